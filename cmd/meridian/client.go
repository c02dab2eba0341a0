package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/meridian-fed/meridian/proto/meridian/pki"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// defaultServer is where the client looks when nothing says otherwise: the
// hub's default listen address.
const defaultServer = "127.0.0.1:7700"

// maxResponseBytes bounds one API response the client accepts.
const maxResponseBytes = 512 << 20

// clientFlags are the flags every client command shares.
type clientFlags struct {
	server     string
	configPath string
	context    string
	namespace  string
	timeout    time.Duration
	caFile     string
	token      string
	insecure   bool
	cluster    string
}

func addClientFlags(root *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	pf := root.PersistentFlags()
	pf.StringVar(&cf.server, "server", "", "API address (host:port); default from the client context, $MERIDIAN_SERVER, then "+defaultServer)
	pf.StringVar(&cf.configPath, "client-config", "", "client context file; default $MERIDIAN_CLIENT_CONFIG or ~/.meridian/client.yaml")
	pf.StringVar(&cf.context, "context", "", "context to use from the client context file (default: its current-context)")
	pf.StringVarP(&cf.namespace, "namespace", "n", "", "namespace (default: the context's namespace, then \"default\")")
	pf.DurationVar(&cf.timeout, "request-timeout", 30*time.Second, "deadline for each API call")
	pf.StringVar(&cf.caFile, "ca-file", "", "CA certificate (PEM) to verify the hub with; default $MERIDIAN_CA_FILE, then the client context")
	pf.StringVar(&cf.token, "token", "", "admin token; default from the client context, then $MERIDIAN_TOKEN")
	pf.BoolVar(&cf.insecure, "insecure", false, "plaintext, no credentials ($MERIDIAN_INSECURE=1): for a member's local API, which serves plaintext on loopback")
	pf.StringVar(&cf.cluster, "cluster", "", "talk to this member cluster's local API (its address comes from the hub's Cluster object)")
	return cf
}

// ClientConfig is the client context file: like a kubeconfig, it names the
// servers a user talks to so that commands need no flags after setup.
type ClientConfig struct {
	CurrentContext string          `json:"current-context,omitempty"`
	Contexts       []ClientContext `json:"contexts,omitempty"`
}

// ClientContext is one named server and the credentials to use with it.
type ClientContext struct {
	Name      string `json:"name"`
	Server    string `json:"server"`
	Namespace string `json:"namespace,omitempty"`
	// CAFile verifies the hub's certificate (TLS); empty with Insecure.
	CAFile string `json:"ca-file,omitempty"`
	// Token is the admin bearer token sent with every call.
	Token string `json:"token,omitempty"`
	// Insecure talks plaintext without credentials (a member's local API).
	Insecure bool `json:"insecure,omitempty"`
}

func (cf *clientFlags) path() (string, error) {
	if cf.configPath != "" {
		return cf.configPath, nil
	}
	if p := os.Getenv("MERIDIAN_CLIENT_CONFIG"); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the client context file: no home directory (%v); use --client-config", err)
	}
	return filepath.Join(home, ".meridian", "client.yaml"), nil
}

func readClientConfig(path string) (*ClientConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &ClientConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	var c ClientConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("client context file %s: %w", path, err)
	}
	return &c, nil
}

func writeClientConfig(path string, c *ClientConfig) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// upsert adds or replaces a context and makes it current.
func (c *ClientConfig) upsert(ctx ClientContext) {
	for i := range c.Contexts {
		if c.Contexts[i].Name == ctx.Name {
			c.Contexts[i] = ctx
			c.CurrentContext = ctx.Name
			return
		}
	}
	c.Contexts = append(c.Contexts, ctx)
	c.CurrentContext = ctx.Name
}

func (c *ClientConfig) find(name string) (ClientContext, bool) {
	for _, x := range c.Contexts {
		if x.Name == name {
			return x, true
		}
	}
	return ClientContext{}, false
}

// target is what a client command connects to.
type target struct {
	server, namespace string
	caFile, token     string
	insecure          bool
}

// resolve returns what a client command connects to: flags, then
// environment, then the client context, then the defaults.
func (cf *clientFlags) resolve() (target, error) {
	path, err := cf.path()
	if err != nil {
		return target{}, err
	}
	cc, err := readClientConfig(path)
	if err != nil {
		return target{}, err
	}
	name := cf.context
	if name == "" {
		name = cc.CurrentContext
	}
	var cur ClientContext
	if name != "" {
		var ok bool
		if cur, ok = cc.find(name); !ok {
			return target{}, fmt.Errorf("--context: no context %q in %s", name, path)
		}
	}
	t := target{
		server:    firstNonEmpty(cf.server, os.Getenv("MERIDIAN_SERVER"), cur.Server, defaultServer),
		namespace: firstNonEmpty(cf.namespace, cur.Namespace, "default"),
		caFile:    firstNonEmpty(cf.caFile, os.Getenv("MERIDIAN_CA_FILE"), cur.CAFile),
		token:     firstNonEmpty(cf.token, os.Getenv("MERIDIAN_TOKEN"), cur.Token),
		insecure:  cf.insecure || os.Getenv("MERIDIAN_INSECURE") == "1" || (cur.Insecure && cf.caFile == ""),
	}
	return t, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// client is a connection to an Admin API.
type client struct {
	meridianv1.AdminServiceClient
	conn      *grpc.ClientConn
	server    string
	namespace string
	timeout   time.Duration
}

func (cf *clientFlags) dial() (*client, error) {
	t, err := cf.resolve()
	if err != nil {
		return nil, err
	}
	if cf.cluster != "" {
		return cf.dialCluster(t)
	}
	conn, err := dialTarget(t)
	if err != nil {
		return nil, err
	}
	return &client{AdminServiceClient: meridianv1.NewAdminServiceClient(conn), conn: conn, server: t.server, namespace: t.namespace, timeout: cf.timeout}, nil
}

// dialTarget connects to a hub (TLS, verified against the CA, with the
// admin token) or, with insecure, to a member's plaintext local API.
func dialTarget(t target) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		// A list of every pod of a large member is bigger than gRPC's default 4 MiB.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)),
	}
	switch {
	case t.insecure:
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	case t.caFile == "":
		return nil, fmt.Errorf("no CA to verify %s with: the hub serves TLS. Set up a context once:\n"+
			"  meridian context set NAME --server %s --ca-file <hub data-dir>/ca.crt --token \"$(cat <hub data-dir>/admin.token)\"\n"+
			"(`meridian dev` does this for you), or pass --ca-file and --token; for a member's plaintext local API use --insecure", t.server, t.server)
	default:
		pemData, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := pki.PoolFromPEM(pemData)
		if err != nil {
			return nil, fmt.Errorf("--ca-file %s: %w", t.caFile, err)
		}
		tlsCfg, err := pki.ClientTLS(pool, nil, "")
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
		if t.token != "" {
			tok, err := pki.ParseToken(t.token)
			if err != nil {
				return nil, fmt.Errorf("--token: %w", err)
			}
			opts = append(opts, grpc.WithPerRPCCredentials(pki.BearerToken(tok)))
		}
	}
	conn, err := grpc.NewClient(t.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", t.server, err)
	}
	return conn, nil
}

// dialCluster connects to a member's local API, found on the hub's Cluster
// object (spec.apiEndpoint). The member's API is plaintext on loopback.
func (cf *clientFlags) dialCluster(t target) (*client, error) {
	hubConn, err := dialTarget(t)
	if err != nil {
		return nil, err
	}
	defer hubConn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	resp, err := meridianv1.NewAdminServiceClient(hubConn).Get(ctx, &meridianv1.GetRequest{Kind: "clusters", Name: cf.cluster})
	if err != nil {
		return nil, fmt.Errorf("--cluster %s: %w", cf.cluster, err)
	}
	ep := resp.GetObject().GetCluster().GetSpec().GetApiEndpoint()
	if ep == "" {
		return nil, fmt.Errorf("--cluster %s: the cluster has no API endpoint (spec.apiEndpoint)", cf.cluster)
	}
	mt := target{server: ep, namespace: t.namespace, insecure: true}
	conn, err := dialTarget(mt)
	if err != nil {
		return nil, err
	}
	return &client{AdminServiceClient: meridianv1.NewAdminServiceClient(conn), conn: conn, server: ep, namespace: t.namespace, timeout: cf.timeout}, nil
}

func (c *client) Close() error { return c.conn.Close() }

// call returns a context bounded by the request timeout.
// connect dials the server and returns the client and a context for one
// call under the client's timeout; done cancels the context and closes the
// connection.
func (cf *clientFlags) connect(parent context.Context) (c *client, ctx context.Context, done func(), err error) {
	c, err = cf.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := c.call(parent)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

func (c *client) call(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.timeout)
}
