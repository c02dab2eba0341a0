package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// columns is how `get` prints one kind as a table: headers, and a row per
// object. wide adds the -o wide columns.
type columns struct {
	headers, wide []string
	row           func(o resource.Object, now time.Time) (cells, wide []string)
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1 // the Kubernetes default
	}
	return *p
}

func age(ts interface{ AsTime() time.Time }, now time.Time) string {
	if ts == nil {
		return "<unknown>"
	}
	return shortDuration(now.Sub(ts.AsTime()))
}

func ageOf(o resource.Object, now time.Time) string {
	if ct := o.GetMetadata().GetCreationTimestamp(); ct != nil {
		return age(ct, now)
	}
	return "<unknown>"
}

// shortDuration prints a duration the way kubectl does: 45s, 12m, 3h, 5d.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	}
}

func containersAndImages(spec *meridianv1.PodSpec) (names, images string) {
	var n, i []string
	for _, c := range spec.GetContainers() {
		n = append(n, c.GetName())
		img := c.GetImage()
		if img == "" {
			img = strings.Join(c.GetCommand(), " ")
		}
		i = append(i, img)
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}

func selectorString(s *meridianv1.LabelSelector) string {
	var parts []string
	for _, k := range sortedKeys(s.GetMatchLabels()) {
		parts = append(parts, k+"="+s.GetMatchLabels()[k])
	}
	for _, e := range s.GetMatchExpressions() {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", e.GetKey(), strings.ToLower(e.GetOperator()), strings.Join(e.GetValues(), ",")))
	}
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapString(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func conditionStatus(conds []*meridianv1.Condition, typ string) string {
	for _, c := range conds {
		if c.GetType() == typ {
			return c.GetStatus()
		}
	}
	return "Unknown"
}

var tableColumns = map[string]columns{
	"Namespace": {headers: []string{"STATUS"}, row: func(o resource.Object, _ time.Time) ([]string, []string) {
		phase := o.(*meridianv1.Namespace).GetStatus().GetPhase()
		if phase == "" {
			phase = "Active"
		}
		return []string{phase}, nil
	}},
	"Deployment": {headers: []string{"READY", "UP-TO-DATE", "AVAILABLE"}, wide: []string{"CONTAINERS", "IMAGES", "SELECTOR"},
		row: func(o resource.Object, _ time.Time) ([]string, []string) {
			d := o.(*meridianv1.Deployment)
			st := d.GetStatus()
			n, i := containersAndImages(d.GetSpec().GetTemplate().GetSpec())
			return []string{fmt.Sprintf("%d/%d", st.GetReadyReplicas(), desired(d, replicas(d.GetSpec().Replicas))), itoa(st.GetUpdatedReplicas()), itoa(st.GetAvailableReplicas())},
				[]string{n, i, selectorString(d.GetSpec().GetSelector())}
		}},
	"ReplicaSet": {headers: []string{"DESIRED", "CURRENT", "READY"}, wide: []string{"CONTAINERS", "IMAGES", "SELECTOR"},
		row: func(o resource.Object, _ time.Time) ([]string, []string) {
			r := o.(*meridianv1.ReplicaSet)
			n, i := containersAndImages(r.GetSpec().GetTemplate().GetSpec())
			return []string{itoa(replicas(r.GetSpec().Replicas)), itoa(r.GetStatus().GetReplicas()), itoa(r.GetStatus().GetReadyReplicas())},
				[]string{n, i, selectorString(r.GetSpec().GetSelector())}
		}},
	"StatefulSet": {headers: []string{"READY"}, wide: []string{"CONTAINERS", "IMAGES"},
		row: func(o resource.Object, _ time.Time) ([]string, []string) {
			s := o.(*meridianv1.StatefulSet)
			n, i := containersAndImages(s.GetSpec().GetTemplate().GetSpec())
			return []string{fmt.Sprintf("%d/%d", s.GetStatus().GetReadyReplicas(), desired(s, replicas(s.GetSpec().Replicas)))}, []string{n, i}
		}},
	"DaemonSet": {headers: []string{"DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR"}, wide: []string{"CONTAINERS", "IMAGES"},
		row: func(o resource.Object, _ time.Time) ([]string, []string) {
			d := o.(*meridianv1.DaemonSet)
			st := d.GetStatus()
			n, i := containersAndImages(d.GetSpec().GetTemplate().GetSpec())
			return []string{itoa(st.GetDesiredNumberScheduled()), itoa(st.GetCurrentNumberScheduled()), itoa(st.GetNumberReady()),
				itoa(st.GetUpdatedNumberScheduled()), itoa(st.GetNumberAvailable()), mapString(d.GetSpec().GetTemplate().GetSpec().GetNodeSelector())}, []string{n, i}
		}},
	"Job": {headers: []string{"STATUS", "COMPLETIONS", "DURATION"}, wide: []string{"CONTAINERS", "IMAGES"},
		row: func(o resource.Object, now time.Time) ([]string, []string) {
			j := o.(*meridianv1.Job)
			st := j.GetStatus()
			state := "Running"
			switch {
			case conditionStatus(st.GetConditions(), "Complete") == "True":
				state = "Complete"
			case conditionStatus(st.GetConditions(), "Failed") == "True":
				state = "Failed"
			case j.GetSpec().GetSuspend():
				state = "Suspended"
			}
			dur := ""
			if st.GetStartTime() != nil {
				end := now
				if st.GetCompletionTime() != nil {
					end = st.GetCompletionTime().AsTime()
				}
				dur = shortDuration(end.Sub(st.GetStartTime().AsTime()))
			}
			n, i := containersAndImages(j.GetSpec().GetTemplate().GetSpec())
			return []string{state, fmt.Sprintf("%d/%d", st.GetSucceeded(), desired(j, replicas(j.GetSpec().Completions))), dur}, []string{n, i}
		}},
	"CronJob": {headers: []string{"SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE"}, wide: []string{"CONTAINERS", "IMAGES"},
		row: func(o resource.Object, now time.Time) ([]string, []string) {
			c := o.(*meridianv1.CronJob)
			last := "<none>"
			if t := c.GetStatus().GetLastScheduleTime(); t != nil {
				last = age(t, now)
			}
			n, i := containersAndImages(c.GetSpec().GetJobTemplate().GetSpec().GetTemplate().GetSpec())
			return []string{c.GetSpec().GetSchedule(), strconv.FormatBool(c.GetSpec().GetSuspend()), itoa(int32(len(c.GetStatus().GetActive()))), last}, []string{n, i}
		}},
	"Service": {headers: []string{"TYPE", "CLUSTER-IP", "PORT(S)"}, wide: []string{"SELECTOR"},
		row: func(o resource.Object, _ time.Time) ([]string, []string) {
			s := o.(*meridianv1.Service)
			typ := s.GetSpec().GetType()
			if typ == "" {
				typ = "ClusterIP"
			}
			ip := s.GetSpec().GetClusterIp()
			if ip == "" {
				ip = "<pending>"
			}
			var ports []string
			for _, p := range s.GetSpec().GetPorts() {
				proto := p.GetProtocol()
				if proto == "" {
					proto = "TCP"
				}
				ports = append(ports, fmt.Sprintf("%d/%s", p.GetPort(), proto))
			}
			return []string{typ, ip, strings.Join(ports, ",")}, []string{mapString(s.GetSpec().GetSelector())}
		}},
	"ConfigMap": {headers: []string{"DATA"}, row: func(o resource.Object, _ time.Time) ([]string, []string) {
		c := o.(*meridianv1.ConfigMap)
		return []string{itoa(int32(len(c.GetData()) + len(c.GetBinaryData())))}, nil
	}},
	"Secret": {headers: []string{"TYPE", "DATA"}, row: func(o resource.Object, _ time.Time) ([]string, []string) {
		s := o.(*meridianv1.Secret)
		typ := s.GetType()
		if typ == "" {
			typ = "Opaque"
		}
		return []string{typ, itoa(int32(len(s.GetData())))}, nil
	}},
	"Cluster": {headers: []string{"REGION", "DATACENTER", "READY", "SCHEDULABLE"},
		wide: []string{"NODES", "CPU(AVAIL/ALLOC)", "MEMORY(AVAIL/ALLOC)", "PODS(AVAIL/ALLOC)", "TAINTS", "VERSION", "HEARTBEAT"},
		row: func(o resource.Object, now time.Time) ([]string, []string) {
			c := o.(*meridianv1.Cluster)
			var taints []string
			for _, t := range c.GetSpec().GetTaints() {
				taints = append(taints, fmt.Sprintf("%s=%s:%s", t.GetKey(), t.GetValue(), t.GetEffect()))
			}
			st := c.GetStatus()
			sched := "true"
			if c.GetSpec().GetUnschedulable() {
				sched = "false (cordoned)"
			}
			hb := "<none>"
			if t := st.GetLastHeartbeatTime(); t != nil {
				hb = age(t, now) + " ago"
			}
			capa := func(r string) string {
				if st.GetAllocatable()[r] == "" {
					return "<none>"
				}
				return orNone(st.GetAvailable()[r]) + "/" + st.GetAllocatable()[r]
			}
			return []string{c.GetSpec().GetRegion(), c.GetSpec().GetDatacenter(), clusterHealth(c), sched},
				[]string{itoa(st.GetNodeCount()), capa("cpu"), capa("memory"), capa("pods"), orNone(strings.Join(taints, ",")), orNone(st.GetVersion()), hb}
		}},
	"Pod": {headers: []string{"READY", "STATUS", "RESTARTS"}, wide: []string{"IP", "NODE"},
		row: func(o resource.Object, _ time.Time) ([]string, []string) {
			p := o.(*meridianv1.Pod)
			ready, restarts := 0, int32(0)
			for _, cs := range p.GetStatus().GetContainerStatuses() {
				if cs.GetReady() {
					ready++
				}
				restarts += cs.GetRestartCount()
			}
			phase := podStatusWord(p)
			return []string{fmt.Sprintf("%d/%d", ready, len(p.GetSpec().GetContainers())), phase, itoa(restarts)},
				[]string{orNone(p.GetStatus().GetPodIp()), orNone(p.GetSpec().GetNodeName())}
		}},
	"Node": {headers: []string{"STATUS"}, row: func(o resource.Object, _ time.Time) ([]string, []string) {
		n := o.(*meridianv1.Node)
		st := "NotReady"
		if conditionStatus(n.GetStatus().GetConditions(), "Ready") == "True" {
			st = "Ready"
		}
		if n.GetSpec().GetUnschedulable() {
			st += ",SchedulingDisabled"
		}
		return []string{st}, nil
	}},
	"Event": {headers: []string{"TYPE", "REASON", "OBJECT", "MESSAGE"}, row: func(o resource.Object, _ time.Time) ([]string, []string) {
		e := o.(*meridianv1.Event)
		io := e.GetInvolvedObject()
		return []string{e.GetType(), e.GetReason(), strings.ToLower(io.GetKind()) + "/" + io.GetName(), e.GetMessage()}, nil
	}},
}

// podStatusWord is the STATUS column of a pod, as kubectl prints it: the
// pod's reason, else the reason of a container that is waiting or has
// ended badly (CrashLoopBackOff, ImageNotSupported, Error), else the phase;
// Terminating for a pod being deleted.
func podStatusWord(p *meridianv1.Pod) string {
	if p.GetMetadata().GetDeletionTimestamp() != nil {
		return "Terminating"
	}
	st := p.GetStatus()
	if r := st.GetReason(); r != "" {
		return r
	}
	for _, cs := range st.GetContainerStatuses() {
		if cs.GetState() == "Waiting" && cs.GetReason() != "" && cs.GetReason() != "ContainerCreating" {
			return cs.GetReason()
		}
		if cs.GetState() == "Terminated" && cs.GetReason() != "" && cs.GetReason() != "Completed" && st.GetPhase() != "Succeeded" {
			return cs.GetReason()
		}
	}
	return orNone(st.GetPhase())
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

// tablePrinter prints objects of one kind as aligned columns.
type tablePrinter struct {
	tw             *tabwriter.Writer
	kind           *resource.Kind
	wide, withNS   bool
	headersPrinted bool
	now            func() time.Time
}

func newTablePrinter(w io.Writer, kind *resource.Kind, wide, withNS bool) *tablePrinter {
	return &tablePrinter{tw: tabwriter.NewWriter(w, 0, 8, 3, ' ', 0), kind: kind, wide: wide, withNS: withNS, now: time.Now}
}

func (p *tablePrinter) print(objs ...resource.Object) {
	cols := tableColumns[p.kind.Kind]
	if !p.headersPrinted {
		var h []string
		if p.withNS {
			h = append(h, "NAMESPACE")
		}
		h = append(h, "NAME")
		h = append(h, cols.headers...)
		h = append(h, "AGE")
		if p.wide {
			h = append(h, cols.wide...)
		}
		fmt.Fprintln(p.tw, strings.Join(h, "\t"))
		p.headersPrinted = true
	}
	now := p.now()
	for _, o := range objs {
		var cells []string
		if p.withNS {
			cells = append(cells, o.GetMetadata().GetNamespace())
		}
		cells = append(cells, o.GetMetadata().GetName())
		var wide []string
		if cols.row != nil {
			var c []string
			c, wide = cols.row(o, now)
			cells = append(cells, c...)
		}
		cells = append(cells, ageOf(o, now))
		if p.wide {
			cells = append(cells, wide...)
		}
		fmt.Fprintln(p.tw, strings.Join(cells, "\t"))
	}
	p.tw.Flush()
}

// desired is the READY denominator of a workload: on the hub, the sum of
// what its clusters must run; on a member (or before any cluster reported),
// the spec's count.
func desired(o resource.Object, spec int32) int32 {
	if d, ok := federation.Desired(o); ok {
		return d
	}
	return spec
}

// clusterHealth is a cluster's health word: the reason of its Ready
// condition (Ready, Suspect, Unreachable), or Unknown.
func clusterHealth(c *meridianv1.Cluster) string {
	for _, cond := range c.GetStatus().GetConditions() {
		if cond.GetType() == "Ready" && cond.GetReason() != "" {
			return cond.GetReason()
		}
	}
	return "Unknown"
}
