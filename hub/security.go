package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const (
	// adminTokenPrefix holds admin token records (hash only) in etcd.
	adminTokenPrefix = "/meridian/pki/admin-tokens/"
	// AdminTokenFile and CAFile are written into the hub's data-dir: the
	// first admin token (only when it is made) and the CA certificate, for
	// `meridian context set --ca-file ... --token-file ...`.
	AdminTokenFile = "admin.token"
	CAFile         = "ca.crt"
)

// security is what the hub's API needs to authenticate: the CA, the serving
// certificate and the admin tokens.
type security struct {
	ca          *pki.CA
	tokens      *pki.Tokens
	adminTokens *pki.AdminTokenSet
	serverTLS   *tls.Config
}

// setupSecurity makes sure the federation CA and a first admin token exist
// (in etcd, shared by every hub node), issues this node's serving
// certificate, and writes the CA (and a new admin token) into data-dir.
func setupSecurity(ctx context.Context, cfg Config, cli *clientv3.Client) (*security, error) {
	ca, err := pki.EnsureCA(ctx, pki.NewEtcdCAStore(cli), "meridian-ca", pki.DefaultCAValidity)
	if err != nil {
		return nil, fmt.Errorf("failed to set up the federation CA: %w", err)
	}
	names := []string{"localhost", "127.0.0.1"}
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" && host != "0.0.0.0" && host != "::" {
		names = append(names, host)
	}
	names = append(names, cfg.TLSSANs...)
	kp, err := ca.IssueServer(dedupe(names), pki.DefaultCertValidity)
	if err != nil {
		return nil, fmt.Errorf("tls-san: failed to issue the hub's serving certificate: %w", err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		return nil, err
	}
	serverTLS, err := pki.ServerTLSClientCertOptional(ca.Pool(), cert)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(cfg.DataDir, CAFile), ca.CertPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	admin, err := ensureAdminToken(ctx, cli, filepath.Join(cfg.DataDir, AdminTokenFile))
	if err != nil {
		return nil, err
	}
	return &security{ca: ca, tokens: pki.NewTokens(pki.NewEtcdTokenStore(cli)), adminTokens: admin, serverTLS: serverTLS}, nil
}

// ensureAdminToken loads the admin token records from etcd; when there are
// none it makes the first one, "admin", keeps its record and writes the
// token to tokenFile (0600) — the only place its secret is ever written.
func ensureAdminToken(ctx context.Context, cli *clientv3.Client, tokenFile string) (*pki.AdminTokenSet, error) {
	recs, err := loadAdminTokens(ctx, cli)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		tok, rec, err := pki.NewAdminToken("admin", 0)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		key := adminTokenPrefix + rec.ID
		// Only the first hub node to get here makes the token.
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(adminTokenPrefix+"first"), "=", 0)).
			Then(clientv3.OpPut(adminTokenPrefix+"first", rec.ID), clientv3.OpPut(key, string(data))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("failed to store the admin token: %w", err)
		}
		if resp.Succeeded {
			if err := writeFileAtomic(tokenFile, []byte(tok.Value()+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("data-dir: failed to write the admin token: %w", err)
			}
		}
		if recs, err = loadAdminTokens(ctx, cli); err != nil {
			return nil, err
		}
	}
	return pki.NewAdminTokenSet(recs...)
}

func loadAdminTokens(ctx context.Context, cli *clientv3.Client) ([]pki.AdminTokenRecord, error) {
	resp, err := cli.Get(ctx, adminTokenPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("failed to read admin tokens: %w", err)
	}
	var recs []pki.AdminTokenRecord
	for _, kv := range resp.Kvs {
		if string(kv.Key) == adminTokenPrefix+"first" {
			continue
		}
		var rec pki.AdminTokenRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("admin token record %s: %w", kv.Key, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// mintAdminToken makes an admin token named name (a drill operator's:
// hub/drill), keeps its record in etcd and in this node's set, and
// returns its value; other hub nodes load it on first use.
func (s *security) mintAdminToken(ctx context.Context, cli *clientv3.Client, name string, ttl time.Duration) (string, error) {
	tok, rec, err := pki.NewAdminToken(name, ttl)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	if _, err := cli.Put(ctx, adminTokenPrefix+rec.ID, string(data)); err != nil {
		return "", fmt.Errorf("failed to store the admin token: %w", err)
	}
	if err := s.adminTokens.Add(rec); err != nil {
		return "", err
	}
	return tok.Value(), nil
}

// revokeAdminToken removes the admin token id (a drill operator's: hub/drill)
// from etcd and from this node's set; other hub nodes find its record gone
// on the token's next call (reloadingTokens).
func (s *security) revokeAdminToken(ctx context.Context, cli *clientv3.Client, id string) error {
	if id == "" || id == "first" {
		return fmt.Errorf("admin token %q cannot be revoked here", id)
	}
	if _, err := cli.Delete(ctx, adminTokenPrefix+id); err != nil {
		return fmt.Errorf("failed to delete the admin token: %w", err)
	}
	s.adminTokens.Remove(id)
	return nil
}

// reloadingTokens verifies admin tokens against this node's set and, for
// a token it does not know, reloads the records from etcd (at most once a
// second): a token minted through another hub node works everywhere.
type reloadingTokens struct {
	set *pki.AdminTokenSet
	cli *clientv3.Client

	mu   sync.Mutex
	last time.Time
}

// VerifyAdminToken implements pki.AdminTokenVerifier.
func (r *reloadingTokens) VerifyAdminToken(ctx context.Context, token string) (pki.Identity, error) {
	id, err := r.set.VerifyAdminToken(ctx, token)
	if err == nil && drill.IsOperator(id) {
		return r.stillStored(ctx, token, id)
	}
	if !errors.Is(err, pki.ErrTokenUnknown) {
		return id, err
	}
	r.mu.Lock()
	stale := time.Since(r.last) > time.Second
	if stale {
		r.last = time.Now()
	}
	r.mu.Unlock()
	if !stale {
		return id, err
	}
	recs, lerr := loadAdminTokens(ctx, r.cli)
	if lerr != nil {
		return id, err
	}
	for _, rec := range recs {
		_ = r.set.Add(rec) // a bad record stays out, as at start
	}
	return r.set.VerifyAdminToken(ctx, token)
}

// stillStored checks that a drill-operator token this node knows was not
// revoked (through any hub node): its record must still be in etcd — one
// linearizable read per call made with such a token. A revoked token
// leaves this node's set and is Unauthenticated; a failed read refuses the
// call rather than let a revoked token through.
func (r *reloadingTokens) stillStored(ctx context.Context, token string, id pki.Identity) (pki.Identity, error) {
	tok, err := pki.ParseToken(token)
	if err != nil {
		return pki.Identity{}, err
	}
	resp, err := r.cli.Get(ctx, adminTokenPrefix+tok.ID(), clientv3.WithCountOnly())
	if err != nil {
		return pki.Identity{}, fmt.Errorf("failed to check drill-operator token %s: %w", tok.ID(), err)
	}
	if resp.Count == 0 {
		r.set.Remove(tok.ID())
		return pki.Identity{}, fmt.Errorf("admin token %s: %w (revoked)", tok.ID(), pki.ErrTokenUnknown)
	}
	return id, nil
}

// authPolicy says who may call what on the hub API.
func authPolicy() (*pki.Policy, error) {
	fed := "/" + meridianv1.FederationService_ServiceDesc.ServiceName + "/"
	return pki.NewPolicy(map[string][]pki.Role{
		"/" + meridianv1.AdminService_ServiceDesc.ServiceName + "/":     {pki.RoleAdmin},
		"/" + meridianv1.PlacementService_ServiceDesc.ServiceName + "/": {pki.RoleAdmin},
		// Drill operators are admin tokens that hub/drill.OperatorGuard
		// holds to drills; minting their tokens is for full admins.
		"/" + meridianv1.DrillService_ServiceDesc.ServiceName + "/": {pki.RoleAdmin},
		fed + "Sync":            {pki.RoleMember},
		fed + "CreateJoinToken": {pki.RoleAdmin},
		fed + "ListJoinTokens":  {pki.RoleAdmin},
		fed + "RevokeJoinToken": {pki.RoleAdmin},
	},
		fed+"Join",
		"/grpc.health.v1.Health/",
		"/grpc.reflection.v1.ServerReflection/",
		"/grpc.reflection.v1alpha.ServerReflection/",
	)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
