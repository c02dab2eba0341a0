package podutil

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"

	"google.golang.org/protobuf/proto"
	utilrand "k8s.io/apimachinery/pkg/util/rand"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Labels the workload controllers put on what they create.
const (
	// PodTemplateHashLabel marks a Deployment's ReplicaSets and their pods
	// with the hash of the pod template they run.
	PodTemplateHashLabel = "pod-template-hash"
	// ControllerRevisionHashLabel marks StatefulSet and DaemonSet pods with
	// the hash of the template revision they were made from.
	ControllerRevisionHashLabel = "controller-revision-hash"
)

// nameSuffixLen is the length of the random part of a generated name, as
// Kubernetes' generateName uses.
const nameSuffixLen = 5

// maxGeneratedPrefix keeps generated names within the 63 characters of a
// DNS label: 57 + "-" + 5 random characters.
const maxGeneratedPrefix = 63 - 1 - nameSuffixLen

// alphabet is Kubernetes' alphabet for generated names: lower-case letters
// and digits without vowels or look-alikes, so that no word (and no
// offensive one) is spelt by chance.
const alphabet = "bcdfghjklmnpqrstvwxz2456789"

// GenerateName returns prefix-xxxxx with five random characters, as a
// Kubernetes generateName would. The randomness is crypto/rand's, so names
// do not repeat across restarts of the member; a Create that meets an
// existing name (ErrAlreadyExists) simply tries another.
func GenerateName(prefix string) string {
	if len(prefix) > maxGeneratedPrefix {
		prefix = prefix[:maxGeneratedPrefix]
	}
	var b [nameSuffixLen]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	for i := range b {
		// 256 is not a multiple of len(alphabet); the slight bias does not
		// matter for names.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + "-" + string(b[:])
}

// NewPod builds the pod a workload creates from its template: the
// template's labels and annotations (copies), its spec (a copy), the
// namespace and name given, and a controller reference to owner. The caller
// adds what is specific to it (a node name, identity labels).
func NewPod(template *meridianv1.PodTemplateSpec, owner resource.Object, name string) *meridianv1.Pod {
	tm := template.GetMetadata()
	pod := &meridianv1.Pod{
		ApiVersion: "v1",
		Kind:       "Pod",
		Metadata: &meridianv1.ObjectMeta{
			Name:            name,
			Namespace:       owner.GetMetadata().GetNamespace(),
			Labels:          maps.Clone(tm.GetLabels()),
			Annotations:     maps.Clone(tm.GetAnnotations()),
			OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(owner)},
		},
		Spec: proto.Clone(template.GetSpec()).(*meridianv1.PodSpec),
	}
	if pod.Spec == nil {
		pod.Spec = &meridianv1.PodSpec{}
	}
	if pod.Metadata.Labels == nil {
		pod.Metadata.Labels = map[string]string{}
	}
	return pod
}

// TemplateHash returns a short, stable name for a pod template, as
// Kubernetes' pod-template-hash: the 32-bit FNV-1a hash of the template's
// deterministic protobuf encoding (and of collisionCount, if not nil),
// written with the safe alphabet of generated names. The same template
// gives the same hash for the life of a binary; a collisionCount picks
// another hash when a name made from the first one is taken.
func TemplateHash(template *meridianv1.PodTemplateSpec, collisionCount *int32) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(normalizeTemplate(template))
	if err != nil {
		return "", fmt.Errorf("failed to encode pod template: %w", err)
	}
	h := fnv.New32a()
	_, _ = h.Write(b) // a hash.Hash never returns an error
	if collisionCount != nil {
		var c [4]byte
		binary.LittleEndian.PutUint32(c[:], uint32(*collisionCount))
		_, _ = h.Write(c[:])
	}
	return utilrand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10)), nil
}

// normalizeTemplate makes the encodings of equal templates equal: a
// template with empty metadata encodes as one without.
func normalizeTemplate(t *meridianv1.PodTemplateSpec) *meridianv1.PodTemplateSpec {
	if t == nil {
		return &meridianv1.PodTemplateSpec{}
	}
	if t.Metadata != nil && proto.Size(t.Metadata) == 0 {
		c := proto.Clone(t).(*meridianv1.PodTemplateSpec)
		c.Metadata = nil
		return c
	}
	return t
}

// TemplatesEqual reports whether two templates are the same once the label
// ignore is taken out of both (a ReplicaSet's template carries the
// pod-template-hash label its Deployment's template does not).
func TemplatesEqual(a, b *meridianv1.PodTemplateSpec, ignore string) bool {
	return proto.Equal(stripLabel(a, ignore), stripLabel(b, ignore))
}

func stripLabel(t *meridianv1.PodTemplateSpec, label string) *meridianv1.PodTemplateSpec {
	t = normalizeTemplate(t)
	if _, ok := t.GetMetadata().GetLabels()[label]; !ok || label == "" {
		return t
	}
	c := proto.Clone(t).(*meridianv1.PodTemplateSpec)
	delete(c.Metadata.Labels, label)
	return normalizeTemplate(c)
}

// TemplateWithLabel returns a copy of t with label set to value in its
// metadata (created if missing).
func TemplateWithLabel(t *meridianv1.PodTemplateSpec, label, value string) *meridianv1.PodTemplateSpec {
	c := &meridianv1.PodTemplateSpec{}
	if t != nil {
		c = proto.Clone(t).(*meridianv1.PodTemplateSpec)
	}
	if c.Metadata == nil {
		c.Metadata = &meridianv1.ObjectMeta{}
	}
	if c.Metadata.Labels == nil {
		c.Metadata.Labels = map[string]string{}
	}
	c.Metadata.Labels[label] = value
	return c
}
