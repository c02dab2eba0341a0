package service

import (
	"context"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Service types and the clusterIP of a headless Service, as in Kubernetes.
const (
	typeClusterIP = "ClusterIP"
	headless      = "None"
	protocolTCP   = "TCP"
)

// servesClusterIP reports whether a Service gets a virtual address from the
// member: type ClusterIP (the default) and not headless.
func servesClusterIP(svc *meridianv1.Service) bool {
	t := svc.GetSpec().GetType()
	return (t == "" || t == typeClusterIP) && requestedIP(svc.GetSpec()) != headless
}

// selects reports whether a Service's selector matches a pod's labels. A
// Service without a selector selects nothing: its endpoints would be given
// by hand, which Meridian does not support yet.
func selects(svc *meridianv1.Service, pod *meridianv1.Pod) bool {
	sel := svc.GetSpec().GetSelector()
	if len(sel) == 0 || svc.GetMetadata().GetNamespace() != pod.GetMetadata().GetNamespace() {
		return false
	}
	lbls := pod.GetMetadata().GetLabels()
	for k, v := range sel {
		if got, ok := lbls[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// serving reports whether a pod should receive a Service's connections:
// it has an address, is Running with Ready=True and is not terminating — or,
// for a Service that publishes not-ready addresses, merely has an address
// and has not ended.
func serving(svc *meridianv1.Service, pod *meridianv1.Pod) bool {
	if _, err := netip.ParseAddr(pod.GetStatus().GetPodIp()); err != nil {
		return false
	}
	if svc.GetSpec().GetPublishNotReadyAddresses() {
		return !podutil.IsPodTerminal(pod)
	}
	return podutil.IsRunningAndReady(pod) && pod.GetMetadata().GetDeletionTimestamp() == nil
}

// podView is what of a pod matters to the endpoints of the Services that
// select it; a pod update that leaves it unchanged wakes no Service.
type podView struct {
	ip          string
	ready       bool
	terminating bool
	terminal    bool
}

func viewOf(pod *meridianv1.Pod) podView {
	return podView{
		ip:          pod.GetStatus().GetPodIp(),
		ready:       podutil.IsRunningAndReady(pod),
		terminating: pod.GetMetadata().GetDeletionTimestamp() != nil,
		terminal:    podutil.IsPodTerminal(pod),
	}
}

// endpointsChanged reports whether a pod update can change any Service's
// endpoints.
func endpointsChanged(old, cur *meridianv1.Pod) bool {
	return viewOf(old) != viewOf(cur) ||
		!maps.Equal(old.GetMetadata().GetLabels(), cur.GetMetadata().GetLabels())
}

// targetPort resolves a Service port's targetPort on one pod: a number, or
// the name of a TCP containerPort of one of the pod's containers; unset
// means the Service port itself. It reports false if a named port is not
// in the pod: that pod is no endpoint of this port.
func targetPort(sp *meridianv1.ServicePort, pod *meridianv1.Pod) (uint16, bool) {
	switch v := sp.GetTargetPort().GetValue().(type) {
	case *meridianv1.IntOrString_IntVal:
		if v.IntVal > 0 && v.IntVal <= 65535 {
			return uint16(v.IntVal), true
		}
		return 0, false
	case *meridianv1.IntOrString_StrVal:
		if v.StrVal != "" {
			return namedPort(v.StrVal, pod)
		}
	}
	if p := sp.GetPort(); p > 0 && p <= 65535 {
		return uint16(p), true
	}
	return 0, false
}

// namedPort finds a containerPort by name in the pod's containers.
func namedPort(name string, pod *meridianv1.Pod) (uint16, bool) {
	for _, c := range pod.GetSpec().GetContainers() {
		for _, p := range c.GetPorts() {
			proto := p.GetProtocol()
			if p.GetName() == name && (proto == "" || proto == protocolTCP) && p.GetContainerPort() > 0 && p.GetContainerPort() <= 65535 {
				return uint16(p.GetContainerPort()), true
			}
		}
	}
	return 0, false
}

// proxyPorts returns what the proxy serves for svc given the pods of its
// namespace: one Port per TCP Service port, with the serving pods as
// endpoints in the order of their names. skipped names the ports the
// proxy cannot serve (UDP, SCTP).
func proxyPorts(svc *meridianv1.Service, pods []resource.Object) (ports []Port, skipped []string) {
	var eps []*meridianv1.Pod
	for _, o := range pods {
		pod := o.(*meridianv1.Pod)
		if selects(svc, pod) && serving(svc, pod) {
			eps = append(eps, pod)
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].GetMetadata().GetName() < eps[j].GetMetadata().GetName() })
	for _, sp := range svc.GetSpec().GetPorts() {
		if proto := sp.GetProtocol(); proto != "" && proto != protocolTCP {
			skipped = append(skipped, portLabel(sp))
			continue
		}
		if sp.GetPort() <= 0 || sp.GetPort() > 65535 {
			continue
		}
		pt := Port{Name: sp.GetName(), Port: uint16(sp.GetPort())}
		for _, pod := range eps {
			if tp, ok := targetPort(sp, pod); ok {
				ip := netip.MustParseAddr(pod.GetStatus().GetPodIp()) // serving checked it
				pt.Endpoints = append(pt.Endpoints, netip.AddrPortFrom(ip, tp))
			}
		}
		ports = append(ports, pt)
	}
	return ports, skipped
}

func portLabel(sp *meridianv1.ServicePort) string {
	s := strconv.Itoa(int(sp.GetPort())) + "/" + sp.GetProtocol()
	if sp.GetName() != "" {
		s = sp.GetName() + " (" + s + ")"
	}
	return s
}

// Env returns the Service environment variables of a pod in namespace, as
// Kubernetes sets them, for every Service of the namespace that has a
// virtual address (sorted by name, so a pod's environment is stable):
//
//	WEB_SERVICE_HOST=127.2.0.2          WEB_PORT=tcp://127.2.0.2:80
//	WEB_SERVICE_PORT=80                 WEB_PORT_80_TCP=tcp://127.2.0.2:80
//	WEB_SERVICE_PORT_HTTP=80            WEB_PORT_80_TCP_PROTO=tcp
//	                                    WEB_PORT_80_TCP_PORT=80
//	                                    WEB_PORT_80_TCP_ADDR=127.2.0.2
//
// The name is the Service's, upper-cased with '-' as '_'; SERVICE_PORT and
// PORT are those of the first port, SERVICE_PORT_<NAME> exists for named
// ports. Env waits until the Service cache has loaded (so that a pod
// started right after a restart misses nothing) or ctx ends; it returns nil
// then. Services created after a pod started are not in its environment.
func (c *Controller) Env(ctx context.Context, namespace string) []string {
	if !c.services.WaitForSync(ctx) {
		return nil
	}
	objs := c.services.List(namespace, nil)
	sort.Slice(objs, func(i, j int) bool { return objs[i].GetMetadata().GetName() < objs[j].GetMetadata().GetName() })
	var env []string
	for _, o := range objs {
		env = append(env, serviceEnv(o.(*meridianv1.Service))...)
	}
	return env
}

// serviceEnv returns the variables of one Service, or nil if it has no
// virtual address or no ports.
func serviceEnv(svc *meridianv1.Service) []string {
	spec := svc.GetSpec()
	ip, err := netip.ParseAddr(spec.GetClusterIp())
	if err != nil || !servesClusterIP(svc) || len(spec.GetPorts()) == 0 {
		return nil
	}
	prefix := envName(svc.GetMetadata().GetName())
	host := ip.String()
	first := spec.GetPorts()[0]
	env := []string{
		prefix + "_SERVICE_HOST=" + host,
		prefix + "_SERVICE_PORT=" + strconv.Itoa(int(first.GetPort())),
	}
	for _, sp := range spec.GetPorts() {
		if sp.GetName() != "" {
			env = append(env, prefix+"_SERVICE_PORT_"+envName(sp.GetName())+"="+strconv.Itoa(int(sp.GetPort())))
		}
	}
	// The Docker-link variables, which older programs still read.
	env = append(env, prefix+"_PORT="+portURL(first, host))
	for _, sp := range spec.GetPorts() {
		proto := strings.ToLower(sp.GetProtocol())
		if proto == "" {
			proto = "tcp"
		}
		port := strconv.Itoa(int(sp.GetPort()))
		p := prefix + "_PORT_" + port + "_" + strings.ToUpper(proto)
		env = append(env,
			p+"="+portURL(sp, host),
			p+"_PROTO="+proto,
			p+"_PORT="+port,
			p+"_ADDR="+host,
		)
	}
	return env
}

func portURL(sp *meridianv1.ServicePort, host string) string {
	proto := strings.ToLower(sp.GetProtocol())
	if proto == "" {
		proto = "tcp"
	}
	return proto + "://" + host + ":" + strconv.Itoa(int(sp.GetPort()))
}

// envName turns a Service or port name into the stem of a variable name.
func envName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}
