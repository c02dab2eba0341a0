package scheduler

import (
	"fmt"
	"sort"
	"strings"
)

// ScorePluginConfig names a score plugin and the weight of its score.
type ScorePluginConfig struct {
	// Name is the plugin's name (LeastAllocatedName, SelectorSpreadName).
	Name string
	// Weight multiplies the plugin's 0..MaxNodeScore score; at least 1.
	Weight int64
}

// Profile is the plugin pipeline: filters run in the order given, and a
// node's score is the weighted sum of the score plugins'. The order is the
// configuration's, never a map's.
type Profile struct {
	// Filters are filter plugin names, in the order they run on a node;
	// the first that rejects it gives the node's reason.
	Filters []string
	// Scores are the score plugins and their weights.
	Scores []ScorePluginConfig
}

// DefaultProfile is the pipeline a member runs; README.md says why in this
// order and with these weights.
func DefaultProfile() Profile {
	return Profile{
		// Cheapest and least resolvable first: a node rejected here is
		// rejected for a reason no pod leaving will change, and the
		// message says so. Resources last: the check that needs
		// arithmetic, and whose failure may pass once pods finish.
		Filters: []string{NodeUnschedulableName, TaintTolerationName, NodeSelectorName, NodeResourcesFitName},
		// Spreading a workload outweighs packing: losing a node should
		// cost a workload as few pods as possible.
		Scores: []ScorePluginConfig{{Name: SelectorSpreadName, Weight: 2}, {Name: LeastAllocatedName, Weight: 1}},
	}
}

// registry maps a plugin name to its plugin; it is only ever looked up.
var registry = map[string]Plugin{
	NodeUnschedulableName: NodeUnschedulable{},
	TaintTolerationName:   TaintToleration{},
	NodeSelectorName:      NodeSelector{},
	NodeResourcesFitName:  NodeResourcesFit{},
	LeastAllocatedName:    LeastAllocated{},
	SelectorSpreadName:    SelectorSpread{},
}

type weightedScore struct {
	plugin ScorePlugin
	weight int64
}

// Framework runs a profile's plugins for one pod at a time. It reuses its
// buffers between pods and is not safe for concurrent use: the scheduler
// runs it on its single scheduling goroutine.
type Framework struct {
	filters []FilterPlugin
	scores  []weightedScore

	// Scratch space, reused from pod to pod.
	activeFilters []FilterPlugin
	feasible      []*NodeInfo
	totals, raw   []int64
}

// NewFramework builds the pipeline of a profile; it fails on an unknown or
// misplaced plugin name, a duplicate, or a weight below 1.
func NewFramework(p Profile) (*Framework, error) {
	f := &Framework{}
	seen := map[string]bool{}
	for _, name := range p.Filters {
		fp, ok := registry[name].(FilterPlugin)
		if !ok {
			return nil, fmt.Errorf("invalid scheduler profile: %q is not a filter plugin (filters: %s, %s, %s, %s)",
				name, NodeUnschedulableName, TaintTolerationName, NodeSelectorName, NodeResourcesFitName)
		}
		if seen["f/"+name] {
			return nil, fmt.Errorf("invalid scheduler profile: filter %s is listed twice", name)
		}
		seen["f/"+name] = true
		f.filters = append(f.filters, fp)
	}
	for _, sc := range p.Scores {
		sp, ok := registry[sc.Name].(ScorePlugin)
		if !ok {
			return nil, fmt.Errorf("invalid scheduler profile: %q is not a score plugin (scores: %s, %s)",
				sc.Name, LeastAllocatedName, SelectorSpreadName)
		}
		if seen["s/"+sc.Name] {
			return nil, fmt.Errorf("invalid scheduler profile: score %s is listed twice", sc.Name)
		}
		seen["s/"+sc.Name] = true
		if sc.Weight < 1 {
			return nil, fmt.Errorf("invalid scheduler profile: score %s has weight %d, want at least 1", sc.Name, sc.Weight)
		}
		f.scores = append(f.scores, weightedScore{plugin: sp, weight: sc.Weight})
	}
	return f, nil
}

// FitError says why no node can take a pod: how many nodes gave each
// reason. Its message is Kubernetes': "0/3 nodes are available: 2
// Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."
type FitError struct {
	// Pod is the pod's key.
	Pod string
	// NumAllNodes is how many nodes were considered.
	NumAllNodes int
	// Reasons counts the nodes that gave each reason.
	Reasons map[string]int
}

// Error renders the reasons, the most common first.
func (e *FitError) Error() string {
	if e.NumAllNodes == 0 {
		return fmt.Sprintf("0/0 nodes are available: %v.", ErrNoNodes)
	}
	reasons := make([]string, 0, len(e.Reasons))
	for r := range e.Reasons {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := reasons[i], reasons[j]
		if e.Reasons[a] != e.Reasons[b] {
			return e.Reasons[a] > e.Reasons[b]
		}
		return a < b
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d %s", e.Reasons[r], r)
	}
	return fmt.Sprintf("0/%d nodes are available: %s.", e.NumAllNodes, strings.Join(parts, ", "))
}

// Schedule picks the node for pod among nodes: the feasible node with the
// highest weighted score, ties broken by a hash of the pod's uid and the
// node's name (deterministic, so a decision can be replayed, and different
// for different pods, so ties do not all land on one node). It returns a
// *FitError when no node is feasible. It reads nodes and changes nothing.
func (f *Framework) Schedule(pod *PodInfo, nodes []*NodeInfo) (string, error) {
	if len(nodes) == 0 {
		return "", &FitError{Pod: pod.Key}
	}
	f.activeFilters = f.activeFilters[:0]
	for _, p := range f.filters {
		if pf, ok := p.(PreFilterPlugin); ok {
			st := pf.PreFilter(pod)
			if st.IsSkip() {
				continue
			}
			if !st.IsSuccess() {
				// The pod fits nowhere, whatever the node.
				reasons := map[string]int{}
				for _, r := range st.Reasons() {
					reasons[r] = len(nodes)
				}
				return "", &FitError{Pod: pod.Key, NumAllNodes: len(nodes), Reasons: reasons}
			}
		}
		f.activeFilters = append(f.activeFilters, p)
	}

	f.feasible = f.feasible[:0]
	for _, n := range nodes {
		if f.filter(pod, n) == nil {
			f.feasible = append(f.feasible, n)
		}
	}
	switch len(f.feasible) {
	case 0:
		// Only now count the reasons: when some node fits, nobody reads
		// them, and counting costs a map update per rejected node.
		reasons := map[string]int{}
		for _, n := range nodes {
			for _, r := range f.filter(pod, n).Reasons() {
				reasons[r]++
			}
		}
		return "", &FitError{Pod: pod.Key, NumAllNodes: len(nodes), Reasons: reasons}
	case 1:
		return f.feasible[0].Name, nil
	}
	if err := f.score(pod); err != nil {
		return "", err
	}
	best, bestHash, hashed := 0, uint64(0), false
	for i := 1; i < len(f.feasible); i++ {
		switch {
		case f.totals[i] > f.totals[best]:
			best, hashed = i, false
		case f.totals[i] == f.totals[best]:
			if !hashed {
				bestHash, hashed = tieBreak(pod.UID, f.feasible[best].Name), true
			}
			if h := tieBreak(pod.UID, f.feasible[i].Name); h < bestHash {
				best, bestHash = i, h
			}
		}
	}
	return f.feasible[best].Name, nil
}

// filter runs the active filters on one node, in order, and returns the
// first failure (nil if the node passes them all).
func (f *Framework) filter(pod *PodInfo, n *NodeInfo) *Status {
	for _, p := range f.activeFilters {
		if st := p.Filter(pod, n); !st.IsSuccess() {
			return st
		}
	}
	return nil
}

// score fills f.totals with the weighted scores of the feasible nodes.
func (f *Framework) score(pod *PodInfo) error {
	n := len(f.feasible)
	if cap(f.totals) < n {
		f.totals, f.raw = make([]int64, n), make([]int64, n)
	}
	f.totals, f.raw = f.totals[:n], f.raw[:n]
	clear(f.totals)
	for _, ws := range f.scores {
		if ps, ok := ws.plugin.(PreScorePlugin); ok && ps.PreScore(pod).IsSkip() {
			continue
		}
		for i, node := range f.feasible {
			s, st := ws.plugin.Score(pod, node)
			if !st.IsSuccess() {
				return fmt.Errorf("failed to score node %s with %s: %s", node.Name, ws.plugin.Name(), st)
			}
			f.raw[i] = s
		}
		if norm, ok := ws.plugin.(ScoreNormalizer); ok {
			if st := norm.NormalizeScore(pod, f.feasible, f.raw); !st.IsSuccess() {
				return fmt.Errorf("failed to normalize the scores of %s: %s", ws.plugin.Name(), st)
			}
		}
		for i := range f.raw {
			f.totals[i] += f.raw[i] * ws.weight
		}
	}
	return nil
}

// tieBreak is FNV-1a of "uid/node", computed without allocating.
func tieBreak(uid, node string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(uid); i++ {
		h = (h ^ uint64(uid[i])) * prime
	}
	h = (h ^ '/') * prime
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * prime
	}
	return h
}
