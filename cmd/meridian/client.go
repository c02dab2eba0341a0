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
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

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
}

func addClientFlags(root *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	pf := root.PersistentFlags()
	pf.StringVar(&cf.server, "server", "", "API address (host:port); default from the client context, $MERIDIAN_SERVER, then "+defaultServer)
	pf.StringVar(&cf.configPath, "client-config", "", "client context file; default $MERIDIAN_CLIENT_CONFIG or ~/.meridian/client.yaml")
	pf.StringVar(&cf.context, "context", "", "context to use from the client context file (default: its current-context)")
	pf.StringVarP(&cf.namespace, "namespace", "n", "", "namespace (default: the context's namespace, then \"default\")")
	pf.DurationVar(&cf.timeout, "request-timeout", 30*time.Second, "deadline for each API call")
	return cf
}

// ClientConfig is the client context file: like a kubeconfig, it names the
// servers a user talks to so that commands need no flags after setup.
type ClientConfig struct {
	CurrentContext string          `json:"current-context,omitempty"`
	Contexts       []ClientContext `json:"contexts,omitempty"`
}

// ClientContext is one named server.
type ClientContext struct {
	Name      string `json:"name"`
	Server    string `json:"server"`
	Namespace string `json:"namespace,omitempty"`
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

// resolve returns the server and namespace a client command uses.
func (cf *clientFlags) resolve() (server, namespace string, err error) {
	path, err := cf.path()
	if err != nil {
		return "", "", err
	}
	cc, err := readClientConfig(path)
	if err != nil {
		return "", "", err
	}
	name := cf.context
	if name == "" {
		name = cc.CurrentContext
	}
	var cur ClientContext
	if name != "" {
		var ok bool
		if cur, ok = cc.find(name); !ok {
			return "", "", fmt.Errorf("--context: no context %q in %s", name, path)
		}
	}
	server = firstNonEmpty(cf.server, os.Getenv("MERIDIAN_SERVER"), cur.Server, defaultServer)
	namespace = firstNonEmpty(cf.namespace, cur.Namespace, "default")
	return server, namespace, nil
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
	server, ns, err := cf.resolve()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A list of every pod of a large member is bigger than gRPC's default 4 MiB.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)))
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", server, err)
	}
	return &client{AdminServiceClient: meridianv1.NewAdminServiceClient(conn), conn: conn, server: server, namespace: ns, timeout: cf.timeout}, nil
}

func (c *client) Close() error { return c.conn.Close() }

// call returns a context bounded by the request timeout.
func (c *client) call(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.timeout)
}
