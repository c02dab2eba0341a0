package federation

import (
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Summarize is a member's report on one object it holds for the hub: the
// replicas it must run and what its controllers observe. cluster names the
// member. Kinds without pods report only that they are applied.
func Summarize(cluster string, obj resource.Object) *meridianv1.ClusterWorkloadStatus {
	s := &meridianv1.ClusterWorkloadStatus{Cluster: cluster, Applied: true}
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		st := o.GetStatus()
		s.Replicas = replicasOr1(o.GetSpec().Replicas)
		s.Current, s.ReadyReplicas, s.AvailableReplicas, s.UpdatedReplicas = st.GetReplicas(), st.GetReadyReplicas(), st.GetAvailableReplicas(), st.GetUpdatedReplicas()
		s.Conditions = cloneConditions(st.GetConditions())
	case *meridianv1.StatefulSet:
		st := o.GetStatus()
		s.Replicas = replicasOr1(o.GetSpec().Replicas)
		s.Current, s.ReadyReplicas, s.AvailableReplicas, s.UpdatedReplicas = st.GetReplicas(), st.GetReadyReplicas(), st.GetAvailableReplicas(), st.GetUpdatedReplicas()
		s.Conditions = cloneConditions(st.GetConditions())
	case *meridianv1.DaemonSet:
		st := o.GetStatus()
		s.Replicas = st.GetDesiredNumberScheduled()
		s.Current, s.ReadyReplicas, s.AvailableReplicas, s.UpdatedReplicas = st.GetCurrentNumberScheduled(), st.GetNumberReady(), st.GetNumberAvailable(), st.GetUpdatedNumberScheduled()
		s.Conditions = cloneConditions(st.GetConditions())
	case *meridianv1.Job:
		st := o.GetStatus()
		s.Replicas = replicasOr1(o.GetSpec().Completions)
		s.Active, s.Succeeded, s.Failed, s.ReadyReplicas = st.GetActive(), st.GetSucceeded(), st.GetFailed(), st.GetReady()
		s.Current = st.GetActive()
		s.Conditions = cloneConditions(st.GetConditions())
	case *meridianv1.CronJob:
		s.Active = int32(len(o.GetStatus().GetActive()))
		s.Current = s.Active
	}
	return s
}

func replicasOr1(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func cloneConditions(cs []*meridianv1.Condition) []*meridianv1.Condition {
	if len(cs) == 0 {
		return nil
	}
	out := make([]*meridianv1.Condition, len(cs))
	for i, c := range cs {
		out[i] = proto.Clone(c).(*meridianv1.Condition)
	}
	return out
}

// Aggregate sets a hub workload's status from its members' summaries:
// status.clusters holds one entry per cluster (sorted by name), and the
// kind's own counters are their sums. It returns false for kinds without
// a federated status. The summaries are not copied.
func Aggregate(obj resource.Object, clusters []*meridianv1.ClusterWorkloadStatus) bool {
	sorted := append([]*meridianv1.ClusterWorkloadStatus(nil), clusters...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].GetCluster() < sorted[j].GetCluster() })
	var sum meridianv1.ClusterWorkloadStatus
	for _, c := range sorted {
		sum.Replicas += c.GetReplicas()
		sum.Current += c.GetCurrent()
		sum.ReadyReplicas += c.GetReadyReplicas()
		sum.AvailableReplicas += c.GetAvailableReplicas()
		sum.UpdatedReplicas += c.GetUpdatedReplicas()
		sum.Active += c.GetActive()
		sum.Succeeded += c.GetSucceeded()
		sum.Failed += c.GetFailed()
	}
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		st := &meridianv1.DeploymentStatus{
			ObservedGeneration: o.GetMetadata().GetGeneration(),
			Replicas:           sum.Current, UpdatedReplicas: sum.UpdatedReplicas,
			ReadyReplicas: sum.ReadyReplicas, AvailableReplicas: sum.AvailableReplicas,
			UnavailableReplicas: max(0, sum.Replicas-sum.AvailableReplicas),
			Clusters:            sorted,
		}
		o.Status = st
	case *meridianv1.StatefulSet:
		o.Status = &meridianv1.StatefulSetStatus{
			ObservedGeneration: o.GetMetadata().GetGeneration(),
			Replicas:           sum.Current, ReadyReplicas: sum.ReadyReplicas, CurrentReplicas: sum.Current,
			UpdatedReplicas: sum.UpdatedReplicas, AvailableReplicas: sum.AvailableReplicas,
			Clusters: sorted,
		}
	case *meridianv1.DaemonSet:
		o.Status = &meridianv1.DaemonSetStatus{
			ObservedGeneration:     o.GetMetadata().GetGeneration(),
			CurrentNumberScheduled: sum.Current, DesiredNumberScheduled: sum.Replicas,
			NumberReady: sum.ReadyReplicas, UpdatedNumberScheduled: sum.UpdatedReplicas,
			NumberAvailable: sum.AvailableReplicas,
			Clusters:        sorted,
		}
	case *meridianv1.Job:
		o.Status = &meridianv1.JobStatus{
			Active: sum.Active, Succeeded: sum.Succeeded, Failed: sum.Failed, Ready: sum.ReadyReplicas,
			Conditions: jobConditions(o.GetStatus().GetConditions(), sorted),
			Clusters:   sorted,
		}
	case *meridianv1.CronJob:
		st := proto.Clone(o.GetStatus()).(*meridianv1.CronJobStatus)
		if st == nil {
			st = &meridianv1.CronJobStatus{}
		}
		st.Clusters = sorted
		o.Status = st
	default:
		return false
	}
	return true
}

// Desired is the federation-wide desired count of a hub workload with a
// federated status: the sum of what its clusters must run. ok is false
// when no cluster has reported.
func Desired(obj resource.Object) (desired int32, ok bool) {
	var cs []*meridianv1.ClusterWorkloadStatus
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		cs = o.GetStatus().GetClusters()
	case *meridianv1.StatefulSet:
		cs = o.GetStatus().GetClusters()
	case *meridianv1.DaemonSet:
		cs = o.GetStatus().GetClusters()
	case *meridianv1.Job:
		cs = o.GetStatus().GetClusters()
	case *meridianv1.CronJob:
		cs = o.GetStatus().GetClusters()
	}
	for _, c := range cs {
		desired += c.GetReplicas()
	}
	return desired, len(cs) > 0
}

// jobConditions is a federated Job's Complete or Failed condition: Failed
// when any cluster's run failed, Complete when every cluster's completed.
func jobConditions(old []*meridianv1.Condition, clusters []*meridianv1.ClusterWorkloadStatus) []*meridianv1.Condition {
	if len(clusters) == 0 {
		return nil
	}
	complete := true
	var failed, done []string
	for _, c := range clusters {
		switch {
		case conditionTrue(c.GetConditions(), "Failed"):
			failed = append(failed, c.GetCluster())
			complete = false
		case conditionTrue(c.GetConditions(), "Complete"):
			done = append(done, c.GetCluster())
		default:
			complete = false
		}
	}
	var c *meridianv1.Condition
	switch {
	case len(failed) > 0:
		c = &meridianv1.Condition{Type: "Failed", Status: "True", Reason: "ClusterFailed", Message: "failed on " + strings.Join(failed, ", ")}
	case complete:
		c = &meridianv1.Condition{Type: "Complete", Status: "True", Reason: "CompletedEverywhere", Message: "complete on " + strings.Join(done, ", ")}
	default:
		return nil
	}
	for _, o := range old {
		if o.GetType() == c.Type && o.GetStatus() == c.Status {
			c.LastTransitionTime = o.GetLastTransitionTime()
		}
	}
	if c.LastTransitionTime == nil {
		c.LastTransitionTime = timestamppb.Now()
	}
	return []*meridianv1.Condition{c}
}

func conditionTrue(conds []*meridianv1.Condition, typ string) bool {
	for _, c := range conds {
		if c.GetType() == typ {
			return c.GetStatus() == "True"
		}
	}
	return false
}
