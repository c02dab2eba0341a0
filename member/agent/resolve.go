package agent

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// resolve gathers what a pod reads from ConfigMaps and Secrets: the
// environment of each container (valueFrom and envFrom) and the files of
// configMap and secret volumes.
//
// The exec runtime has no mount namespaces: a volume mounted at mountPath
// appears inside the pod's directory (the containers' working directory) at
// that path, so a container that mounts a volume at /etc/app reads
// ./etc/app/<key>.
func (a *Agent) resolve(pod *meridianv1.Pod) (map[string][]string, map[string][]byte, error) {
	ns := pod.GetMetadata().GetNamespace()
	env := map[string][]string{}
	for _, c := range append(append([]*meridianv1.Container{}, pod.GetSpec().GetInitContainers()...), pod.GetSpec().GetContainers()...) {
		var vars []string
		for _, from := range c.GetEnvFrom() {
			data, err := a.source(ns, from.GetConfigMapRef(), from.GetSecretRef())
			if err != nil {
				return nil, nil, fmt.Errorf("container %s: envFrom: %w", c.GetName(), err)
			}
			for _, k := range sortedKeys(data) {
				vars = append(vars, from.GetPrefix()+k+"="+data[k])
			}
		}
		for _, e := range c.GetEnv() {
			vf := e.GetValueFrom()
			if vf == nil || vf.GetFieldRef() != nil {
				continue // literal values and field references are the driver's
			}
			v, ok, err := a.keyValue(ns, vf.GetConfigMapKeyRef(), vf.GetSecretKeyRef())
			if err != nil {
				return nil, nil, fmt.Errorf("container %s: env %s: %w", c.GetName(), e.GetName(), err)
			}
			if ok {
				vars = append(vars, e.GetName()+"="+v)
			}
		}
		if len(vars) > 0 {
			env[c.GetName()] = vars
		}
	}

	files := map[string][]byte{}
	volumes := map[string]*meridianv1.Volume{}
	for _, v := range pod.GetSpec().GetVolumes() {
		volumes[v.GetName()] = v
	}
	for _, c := range pod.GetSpec().GetContainers() {
		for _, m := range c.GetVolumeMounts() {
			v := volumes[m.GetName()]
			if v == nil {
				continue
			}
			data, items, err := a.volumeData(ns, v)
			if err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", v.GetName(), err)
			}
			dir := strings.TrimPrefix(path.Clean("/"+m.GetMountPath()), "/")
			for k, content := range data {
				p := k
				if len(items) > 0 {
					var ok bool
					if p, ok = items[k]; !ok {
						continue
					}
				}
				files[path.Join(dir, p)] = content
			}
		}
	}
	return env, files, nil
}

func (a *Agent) volumeData(ns string, v *meridianv1.Volume) (map[string][]byte, map[string]string, error) {
	var items []*meridianv1.KeyToPath
	var data map[string][]byte
	switch {
	case v.GetConfigMap() != nil:
		cm := v.GetConfigMap()
		items = cm.GetItems()
		o, ok := a.cms.Get(ns, cm.GetName())
		if !ok {
			if cm.GetOptional() {
				return nil, nil, nil
			}
			return nil, nil, fmt.Errorf("configmap %q not found", cm.GetName())
		}
		c := o.(*meridianv1.ConfigMap)
		data = map[string][]byte{}
		for k, v := range c.GetData() {
			data[k] = []byte(v)
		}
		for k, v := range c.GetBinaryData() {
			data[k] = v
		}
	case v.GetSecret() != nil:
		s := v.GetSecret()
		items = s.GetItems()
		o, ok := a.secrets.Get(ns, s.GetSecretName())
		if !ok {
			if s.GetOptional() {
				return nil, nil, nil
			}
			return nil, nil, fmt.Errorf("secret %q not found", s.GetSecretName())
		}
		data = o.(*meridianv1.Secret).GetData()
	default:
		return nil, nil, nil // emptyDir: a directory in the pod's dir, nothing to write
	}
	paths := map[string]string{}
	for _, it := range items {
		paths[it.GetKey()] = it.GetPath()
	}
	return data, paths, nil
}

// source returns every key of a ConfigMap or Secret named by envFrom.
func (a *Agent) source(ns string, cmRef, secRef *meridianv1.LocalObjectReference) (map[string]string, error) {
	out := map[string]string{}
	switch {
	case cmRef != nil:
		o, ok := a.cms.Get(ns, cmRef.GetName())
		if !ok {
			if cmRef.GetOptional() {
				return out, nil
			}
			return nil, fmt.Errorf("configmap %q not found", cmRef.GetName())
		}
		for k, v := range o.(*meridianv1.ConfigMap).GetData() {
			out[k] = v
		}
	case secRef != nil:
		o, ok := a.secrets.Get(ns, secRef.GetName())
		if !ok {
			if secRef.GetOptional() {
				return out, nil
			}
			return nil, fmt.Errorf("secret %q not found", secRef.GetName())
		}
		for k, v := range o.(*meridianv1.Secret).GetData() {
			out[k] = string(v)
		}
	}
	return out, nil
}

// keyValue returns one key of a ConfigMap or Secret; ok is false for a
// missing optional one.
func (a *Agent) keyValue(ns string, cmRef, secRef *meridianv1.KeySelector) (string, bool, error) {
	ref, inf, what := cmRef, a.cms, "configmap"
	if ref == nil {
		ref, inf, what = secRef, a.secrets, "secret"
	}
	if ref == nil {
		return "", false, nil
	}
	o, found := inf.Get(ns, ref.GetName())
	if !found {
		if ref.GetOptional() {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s %q not found", what, ref.GetName())
	}
	var v string
	var has bool
	switch x := o.(type) {
	case *meridianv1.ConfigMap:
		v, has = x.GetData()[ref.GetKey()]
	case *meridianv1.Secret:
		var b []byte
		b, has = x.GetData()[ref.GetKey()]
		v = string(b)
	}
	if !has {
		if ref.GetOptional() {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s %q has no key %q", what, ref.GetName(), ref.GetKey())
	}
	return v, true, nil
}

// requeueWaiting re-queues this node's pods in namespace that are not
// running: a ConfigMap or Secret they wait for may just have appeared.
func (a *Agent) requeueWaiting(o resource.Object) {
	ns := o.GetMetadata().GetNamespace()
	for _, p := range a.pods.List(ns, nil) {
		if p.(*meridianv1.Pod).GetSpec().GetNodeName() != a.node.Name {
			continue
		}
		key := controller.Key(p)
		a.mu.Lock()
		_, running := a.running[key]
		a.mu.Unlock()
		if !running {
			a.ctrl.Queue.Add(key)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
