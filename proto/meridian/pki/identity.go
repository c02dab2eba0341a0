package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/url"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
)

// Role is what a credential may do in the federation. Authorization
// (Require, Policy) is by role; the name says who, for logs and for the
// hub to match a member's stream to its Cluster object.
type Role string

// Roles.
const (
	// RoleHub is a hub node: it serves the API and talks to members.
	RoleHub Role = "hub"
	// RoleMember is a member agent: it syncs its own work and reports its
	// own status, and nothing else.
	RoleMember Role = "member"
	// RoleAdmin is an operator (the CLI, the dashboard): the admin API.
	RoleAdmin Role = "admin"
)

// Valid reports whether r is one of the roles above.
func (r Role) Valid() bool {
	switch r {
	case RoleHub, RoleMember, RoleAdmin:
		return true
	}
	return false
}

// URIScheme is the scheme of the URI SAN that carries an Identity.
const URIScheme = "meridian"

// Identity is who a credential speaks for.
//
// In a certificate it is written twice. The authoritative copy is one URI
// SAN,
//
//	meridian://<role>/<name>?datacenter=<datacenter>&region=<region>
//
// (query omitted when region and datacenter are empty) — a SAN because
// SANs are typed, cannot be confused with a host name, and are what SPIFFE
// and service meshes use. The subject repeats it for people reading a
// certificate with openssl: CN = name, O = role, OU = region/datacenter.
// IdentityFromCert reads only the URI.
type Identity struct {
	// Name is the cluster (member) name, the hub node name, or the admin
	// user name: a DNS-1123 subdomain, as a Cluster object's name is.
	Name string
	// Role is what the identity may do.
	Role Role
	// Region and Datacenter place a member (required for RoleMember) or a
	// hub node (optional); DNS-1123 labels, as on a Cluster. Empty for an
	// admin.
	Region     string
	Datacenter string
}

// String renders the identity for logs: "member/dc-a1 (region-a/dc-a1)".
func (id Identity) String() string {
	s := string(id.Role) + "/" + id.Name
	if id.Region != "" || id.Datacenter != "" {
		s += " (" + id.Region + "/" + id.Datacenter + ")"
	}
	return s
}

// Validate checks that the identity can be put in a certificate:
// ErrInvalidIdentity, wrapped with the field at fault.
func (id Identity) Validate() error {
	if !id.Role.Valid() {
		return fmt.Errorf("%w: role %q is not one of hub, member, admin", ErrInvalidIdentity, id.Role)
	}
	if id.Name == "" {
		return fmt.Errorf("%w: name is required", ErrInvalidIdentity)
	}
	if errs := k8svalidation.IsDNS1123Subdomain(id.Name); len(errs) > 0 {
		return fmt.Errorf("%w: name %q: %s", ErrInvalidIdentity, id.Name, strings.Join(errs, "; "))
	}
	if id.Role == RoleMember && (id.Region == "" || id.Datacenter == "") {
		return fmt.Errorf("%w: a member needs a region and a datacenter", ErrInvalidIdentity)
	}
	for _, f := range []struct{ field, value string }{{"region", id.Region}, {"datacenter", id.Datacenter}} {
		if f.value == "" {
			continue
		}
		if errs := k8svalidation.IsDNS1123Label(f.value); len(errs) > 0 {
			return fmt.Errorf("%w: %s %q: %s", ErrInvalidIdentity, f.field, f.value, strings.Join(errs, "; "))
		}
	}
	return nil
}

// URI returns the identity's URI SAN. It does not validate.
func (id Identity) URI() *url.URL {
	u := &url.URL{Scheme: URIScheme, Host: string(id.Role), Path: "/" + id.Name}
	q := url.Values{}
	if id.Region != "" {
		q.Set("region", id.Region)
	}
	if id.Datacenter != "" {
		q.Set("datacenter", id.Datacenter)
	}
	u.RawQuery = q.Encode()
	return u
}

// subject is the human-readable copy of the identity (see Identity).
func (id Identity) subject() pkix.Name {
	name := pkix.Name{CommonName: id.Name, Organization: []string{string(id.Role)}}
	if id.Region != "" || id.Datacenter != "" {
		name.OrganizationalUnit = []string{id.Region + "/" + id.Datacenter}
	}
	return name
}

// ParseIdentityURI parses a URI SAN written by Identity.URI and validates
// the identity. Anything else — another scheme, a user, a port, a fragment,
// an unknown query key — is ErrInvalidIdentity: the CA never writes it.
func ParseIdentityURI(u *url.URL) (Identity, error) {
	if u.Scheme != URIScheme {
		return Identity{}, fmt.Errorf("%w: URI scheme %q is not %q", ErrInvalidIdentity, u.Scheme, URIScheme)
	}
	if u.User != nil || u.Port() != "" || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("%w: URI %q has parts an identity never has", ErrInvalidIdentity, u.String())
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: URI query: %w", ErrInvalidIdentity, err)
	}
	for k, v := range q {
		if (k != "region" && k != "datacenter") || len(v) != 1 {
			return Identity{}, fmt.Errorf("%w: URI query key %q is not region or datacenter, once", ErrInvalidIdentity, k)
		}
	}
	id := Identity{
		Name:       strings.TrimPrefix(u.Path, "/"),
		Role:       Role(u.Host),
		Region:     q.Get("region"),
		Datacenter: q.Get("datacenter"),
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// IdentityFromCert returns the identity of a certificate the CA issued:
// its one meridian:// URI SAN. ErrNoIdentity if it has none,
// ErrInvalidIdentity if it has several or a malformed one. It does not
// verify the certificate: call it on a verified chain's leaf only (the
// Authenticator does).
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, ErrNoIdentity
	}
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != URIScheme {
			continue
		}
		if found != nil {
			return Identity{}, fmt.Errorf("%w: certificate has more than one %s:// URI", ErrInvalidIdentity, URIScheme)
		}
		found = u
	}
	if found == nil {
		return Identity{}, ErrNoIdentity
	}
	return ParseIdentityURI(found)
}

type identityKey struct{}

// WithIdentity returns a context carrying id. The Authenticator calls it;
// tests of handlers may too.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller's identity put in ctx by the
// Authenticator, and false if the caller presented no valid credential.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
