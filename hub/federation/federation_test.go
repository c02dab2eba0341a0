package federation_test

import (
	"fmt"
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestJoinSyncAndStatus joins three members (two regions), applies a
// workload on the hub, and sees every member run its replicas and the
// hub's status sum them.
func TestJoinSyncAndStatus(t *testing.T) {
	f := startHub(t, nil)
	members := map[string]bool{}
	for i, m := range []struct{ name, region, dc string }{{"dc-a1", "region-a", "dc-a1"}, {"dc-a2", "region-a", "dc-a2"}, {"dc-b1", "region-b", "dc-b1"}} {
		f.join(f.memberConfig(m.name, m.region, m.dc, i))
		members[m.name] = true
	}
	for name := range members {
		eventually(t, name+" Ready", func() (bool, string) {
			c := f.cluster(name)
			return health(c) == "Ready" && c.GetStatus().GetNodeCount() == 2, fmt.Sprint(c.GetStatus())
		})
	}
	f.apply(nsYAML + "---\n" + deployYAML("web", 2, "nginx:1"))
	eventually(t, "federation-wide status 6/6", func() (bool, string) {
		d := f.get("deploy", "demo", "web").(*meridianv1.Deployment)
		st := d.GetStatus()
		return st.GetReadyReplicas() == 6 && len(st.GetClusters()) == 3, fmt.Sprint(st)
	})
}
