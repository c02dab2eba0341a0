package scheduler

import (
	"sync"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// podState is what the cache remembers of a pod that holds resources on a
// node: bound to it (seen with spec.nodeName) or assumed to be (the
// scheduler chose the node and the binding is in flight).
type podState struct {
	key                     string
	node                    string
	requests, scoreRequests Resources
	owner                   string
	assumed                 bool
}

// Cache is the scheduler's picture of the member: every node and the
// resources its pods hold. Informer handlers keep it current one change at
// a time, so that scheduling a pod never lists anything.
//
// A pod the scheduler has placed is assumed onto its node at once, before
// the binding is written: the next pod already sees the node's resources
// as taken. That, with a single scheduling goroutine, is what keeps
// concurrent bindings from overcommitting a node. The assumption is
// confirmed when the informer shows the pod bound, and dropped if the
// binding fails. Safe for concurrent use.
type Cache struct {
	mu    sync.Mutex
	nodes map[string]*NodeInfo // by node name, including nodes known only from their pods
	list  []*NodeInfo          // nodes with a Node object, by name; nil when it must be rebuilt
	pods  map[string]*podState // by pod uid
	// owners counts, per controller uid, its pods on each node: what
	// SelectorSpread needs, one map lookup per pod and a pointer-keyed
	// lookup per node.
	owners map[string]map[*NodeInfo]int
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{nodes: map[string]*NodeInfo{}, pods: map[string]*podState{}, owners: map[string]map[*NodeInfo]int{}}
}

// SetNode adds or updates a node. An error names an allocatable quantity
// that did not parse (it counts as nothing).
func (c *Cache) SetNode(node *meridianv1.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := node.GetMetadata().GetName()
	n := c.nodes[name]
	if n == nil {
		n = newNodeInfo(name)
		c.nodes[name] = n
	}
	if n.Node == nil {
		c.list = nil
	}
	return n.setNode(node)
}

// RemoveNode forgets a node. Its pods keep their place, in case it returns.
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[name]
	if n == nil {
		return
	}
	n.Node = nil
	c.list = nil
	if n.Pods == 0 {
		delete(c.nodes, name)
	}
}

// holdsResources reports whether a pod object takes resources on a node:
// it is bound and has not finished.
func holdsResources(p *meridianv1.Pod) bool {
	ph := p.GetStatus().GetPhase()
	return p.GetSpec().GetNodeName() != "" && ph != phaseSucceeded && ph != phaseFailed
}

// SetPod records a pod as the informer shows it. It reports whether the
// change freed resources on a node (the pod finished or moved), which may
// let a waiting pod fit.
func (c *Cache) SetPod(pod *meridianv1.Pod) (freed bool, err error) {
	uid := pod.GetMetadata().GetUid()
	if !holdsResources(pod) {
		c.mu.Lock()
		defer c.mu.Unlock()
		old := c.pods[uid]
		if old == nil || (old.assumed && pod.GetSpec().GetNodeName() == "" && !finished(pod)) {
			// Not on a node; or assumed and the informer has not caught up
			// with the binding yet.
			return false, nil
		}
		c.removeLocked(uid, old)
		return true, nil
	}
	pi, err := NewPodInfo(pod)
	if err != nil {
		// A bound pod whose requests do not parse holds what it holds:
		// count it as requesting nothing rather than lose it.
		pi = &PodInfo{Pod: pod, UID: uid, ScoreRequests: nonZero(Resources{})}
	}
	st := &podState{
		key: pi.Key, node: pod.GetSpec().GetNodeName(),
		requests: pi.Requests, scoreRequests: pi.ScoreRequests, owner: pi.OwnerUID,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.pods[uid]; old != nil {
		if old.node == st.node && old.requests.Equal(st.requests) && old.owner == st.owner {
			old.assumed = false // confirmed
			return false, err
		}
		freed = true
		c.removeLocked(uid, old)
	}
	c.addLocked(uid, st)
	return freed, err
}

func finished(p *meridianv1.Pod) bool {
	ph := p.GetStatus().GetPhase()
	return ph == phaseSucceeded || ph == phaseFailed
}

// RemovePod forgets a deleted pod; it reports whether that freed resources.
func (c *Cache) RemovePod(pod *meridianv1.Pod) (freed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := pod.GetMetadata().GetUid()
	if old := c.pods[uid]; old != nil {
		c.removeLocked(uid, old)
		return true
	}
	return false
}

// Has reports whether the cache holds a pod on a node (bound or assumed):
// such a pod must not be scheduled again, whatever a lagging informer says.
func (c *Cache) Has(uid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pods[uid]
	return ok
}

// Forget drops an assumed pod whose binding failed.
func (c *Cache) Forget(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.pods[uid]; old != nil && old.assumed {
		c.removeLocked(uid, old)
	}
}

// ScheduleAndAssume runs fw for pod over the nodes and, if one fits,
// assumes the pod onto it, all under the cache's lock: the node picture
// cannot change between the decision and the assumption.
func (c *Cache) ScheduleAndAssume(fw *Framework, pod *PodInfo) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pod.OwnerUID != "" {
		pod.siblings = c.owners[pod.OwnerUID]
		defer func() { pod.siblings = nil }() // it changes under the lock only
	}
	node, err := fw.Schedule(pod, c.nodeList())
	if err != nil {
		return "", err
	}
	c.addLocked(pod.UID, &podState{
		key: pod.Key, node: node, requests: pod.Requests, scoreRequests: pod.ScoreRequests,
		owner: pod.OwnerUID, assumed: true,
	})
	return node, nil
}

// NodeCount is the number of nodes (with a Node object).
func (c *Cache) NodeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodeList())
}

// Requested returns what the pods on a node request (for tests and
// metrics).
func (c *Cache) Requested(node string) (Resources, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[node]
	if n == nil {
		return Resources{}, 0
	}
	r := Resources{MilliCPU: n.Requested.MilliCPU, Memory: n.Requested.Memory}
	for k, v := range n.Requested.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[string]int64{}
		}
		r.Scalar[k] = v
	}
	return r, n.Pods
}

// nodeList is the nodes with a Node object, sorted by name: a fixed order
// whatever order the informer delivered them in. Callers hold c.mu.
func (c *Cache) nodeList() []*NodeInfo {
	if c.list == nil {
		c.list = make([]*NodeInfo, 0, len(c.nodes))
		for _, name := range sortedNames(c.nodes) {
			if n := c.nodes[name]; n.Node != nil {
				c.list = append(c.list, n)
			}
		}
	}
	return c.list
}

func (c *Cache) addLocked(uid string, st *podState) {
	n := c.nodes[st.node]
	if n == nil {
		n = newNodeInfo(st.node) // a pod on a node not seen yet
		c.nodes[st.node] = n
	}
	n.addPod(st)
	c.pods[uid] = st
	if st.owner != "" {
		m := c.owners[st.owner]
		if m == nil {
			m = map[*NodeInfo]int{}
			c.owners[st.owner] = m
		}
		m[n]++
	}
}

func (c *Cache) removeLocked(uid string, st *podState) {
	delete(c.pods, uid)
	n := c.nodes[st.node]
	if n == nil {
		return
	}
	n.removePod(st)
	if m := c.owners[st.owner]; m != nil {
		if m[n]--; m[n] <= 0 {
			delete(m, n)
		}
		if len(m) == 0 {
			delete(c.owners, st.owner)
		}
	}
	if n.Node == nil && n.Pods == 0 {
		delete(c.nodes, st.node)
	}
}
