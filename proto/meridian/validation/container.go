package validation

import (
	"fmt"
	"strings"

	k8sresource "k8s.io/apimachinery/pkg/api/resource"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// protocols are the port protocols a container or Service may use.
var protocols = []string{"TCP", "UDP", "SCTP"}

// podNames tracks the names that must be unique across a pod.
type podNames struct {
	containers map[string]bool
	ports      map[string]bool
}

// validateContainers checks the pod's containers and init containers: there
// is at least one container, names are valid and unique across both lists,
// and so are port names.
func validateContainers(spec *meridianv1.PodSpec, volumes map[string]bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := podNames{containers: map[string]bool{}, ports: map[string]bool{}}
	if len(spec.GetContainers()) == 0 {
		errs = append(errs, field.Required(fldPath.Child("containers"), "a pod needs at least one container"))
	}
	for i, c := range spec.GetContainers() {
		errs = append(errs, validateContainer(c, volumes, names, fldPath.Child("containers").Index(i))...)
	}
	for i, c := range spec.GetInitContainers() {
		p := fldPath.Child("initContainers").Index(i)
		errs = append(errs, validateContainer(c, volumes, names, p)...)
		if c.GetReadinessProbe() != nil {
			errs = append(errs, field.Forbidden(p.Child("readinessProbe"), "may not be set for init containers"))
		}
		if c.GetLivenessProbe() != nil {
			errs = append(errs, field.Forbidden(p.Child("livenessProbe"), "may not be set for init containers"))
		}
	}
	return errs
}

func validateContainer(c *meridianv1.Container, volumes map[string]bool, names podNames, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch name := c.GetName(); {
	case name == "":
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	case names.containers[name]:
		errs = append(errs, field.Duplicate(fldPath.Child("name"), name))
	default:
		names.containers[name] = true
		errs = append(errs, checkName(fldPath.Child("name"), name, dns1123Label)...)
	}
	errs = append(errs, checkOneOf(fldPath.Child("imagePullPolicy"), c.GetImagePullPolicy(), false, "Always", "IfNotPresent", "Never")...)
	errs = append(errs, validateContainerPorts(c.GetPorts(), names.ports, fldPath.Child("ports"))...)
	errs = append(errs, validateEnv(c.GetEnv(), fldPath.Child("env"))...)
	errs = append(errs, validateEnvFrom(c.GetEnvFrom(), fldPath.Child("envFrom"))...)
	errs = append(errs, validateResources(c.GetResources(), fldPath.Child("resources"))...)
	errs = append(errs, validateProbe(c.GetReadinessProbe(), false, fldPath.Child("readinessProbe"))...)
	errs = append(errs, validateProbe(c.GetLivenessProbe(), true, fldPath.Child("livenessProbe"))...)
	errs = append(errs, validateProbe(c.GetStartupProbe(), true, fldPath.Child("startupProbe"))...)
	errs = append(errs, validateVolumeMounts(c.GetVolumeMounts(), volumes, fldPath.Child("volumeMounts"))...)
	return errs
}

func validateContainerPorts(ports []*meridianv1.ContainerPort, portNames map[string]bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, port := range ports {
		p := fldPath.Index(i)
		if name := port.GetName(); name != "" {
			if msgs := k8svalidation.IsValidPortName(name); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("name"), name, strings.Join(msgs, "; ")))
			} else if portNames[name] {
				errs = append(errs, field.Duplicate(p.Child("name"), name))
			}
			portNames[name] = true
		}
		if port.GetContainerPort() == 0 {
			errs = append(errs, field.Required(p.Child("containerPort"), ""))
		} else {
			errs = append(errs, checkPort(p.Child("containerPort"), port.GetContainerPort())...)
		}
		if port.GetHostPort() != 0 {
			errs = append(errs, checkPort(p.Child("hostPort"), port.GetHostPort())...)
		}
		errs = append(errs, checkOneOf(p.Child("protocol"), port.GetProtocol(), false, protocols...)...)
	}
	return errs
}

// checkPort reports a port number outside 1-65535.
func checkPort(fldPath *field.Path, port int32) field.ErrorList {
	if msgs := k8svalidation.IsValidPortNum(int(port)); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(fldPath, port, strings.Join(msgs, "; "))}
	}
	return nil
}

// checkPortOrName reports an IntOrString that is neither a valid port
// number nor a valid port name ("http").
func checkPortOrName(fldPath *field.Path, port *meridianv1.IntOrString) field.ErrorList {
	switch v := port.GetValue().(type) {
	case *meridianv1.IntOrString_IntVal:
		return checkPort(fldPath, v.IntVal)
	case *meridianv1.IntOrString_StrVal:
		if msgs := k8svalidation.IsValidPortName(v.StrVal); len(msgs) > 0 {
			return field.ErrorList{field.Invalid(fldPath, v.StrVal, strings.Join(msgs, "; "))}
		}
		return nil
	default:
		return field.ErrorList{field.Required(fldPath, "a port number or name")}
	}
}

// validateResources checks resource names and quantities, and that no
// request exceeds its limit.
func validateResources(r *meridianv1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	limits := map[string]k8sresource.Quantity{}
	for _, part := range []struct {
		name   string
		values map[string]string
	}{{"limits", r.GetLimits()}, {"requests", r.GetRequests()}} {
		for _, name := range sortedKeys(part.values) {
			p := fldPath.Child(part.name).Key(name)
			errs = append(errs, validateLabelKey(name, p)...)
			qerrs := validateQuantity(p, part.values[name])
			errs = append(errs, qerrs...)
			q, err := k8sresource.ParseQuantity(part.values[name])
			if len(qerrs) > 0 || err != nil {
				continue
			}
			if part.name == "limits" {
				limits[name] = q
			} else if limit, ok := limits[name]; ok && q.Cmp(limit) > 0 {
				errs = append(errs, field.Invalid(p, part.values[name], fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
			}
		}
	}
	return errs
}

// validateProbe checks that a probe has exactly one handler, that the
// handler is complete, and that its timings are sensible. Liveness and
// startup probes must succeed once to count.
func validateProbe(probe *meridianv1.Probe, successMustBeOne bool, fldPath *field.Path) field.ErrorList {
	if probe == nil {
		return nil
	}
	var errs field.ErrorList
	var handlers []string
	if e := probe.GetExec(); e != nil {
		handlers = append(handlers, "exec")
		if len(e.GetCommand()) == 0 {
			errs = append(errs, field.Required(fldPath.Child("exec", "command"), ""))
		}
	}
	if h := probe.GetHttpGet(); h != nil {
		handlers = append(handlers, "httpGet")
		p := fldPath.Child("httpGet")
		errs = append(errs, checkPortOrName(p.Child("port"), h.GetPort())...)
		errs = append(errs, checkOneOf(p.Child("scheme"), h.GetScheme(), false, "HTTP", "HTTPS")...)
		if path := h.GetPath(); path != "" && !strings.HasPrefix(path, "/") {
			errs = append(errs, field.Invalid(p.Child("path"), path, "must be an absolute path (start with '/')"))
		}
		for i, hdr := range h.GetHttpHeaders() {
			if msgs := k8svalidation.IsHTTPHeaderName(hdr.GetName()); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("httpHeaders").Index(i).Child("name"), hdr.GetName(), strings.Join(msgs, "; ")))
			}
		}
	}
	if t := probe.GetTcpSocket(); t != nil {
		handlers = append(handlers, "tcpSocket")
		errs = append(errs, checkPortOrName(fldPath.Child("tcpSocket", "port"), t.GetPort())...)
	}
	switch {
	case len(handlers) == 0:
		errs = append(errs, field.Required(fldPath, "must specify a handler type (exec, httpGet or tcpSocket)"))
	case len(handlers) > 1:
		errs = append(errs, field.Forbidden(fldPath.Child(handlers[1]), "may not specify more than 1 handler type"))
	}
	errs = append(errs, checkNonNegative(fldPath.Child("initialDelaySeconds"), probe.GetInitialDelaySeconds())...)
	errs = append(errs, checkNonNegative(fldPath.Child("timeoutSeconds"), probe.GetTimeoutSeconds())...)
	errs = append(errs, checkNonNegative(fldPath.Child("periodSeconds"), probe.GetPeriodSeconds())...)
	errs = append(errs, checkNonNegative(fldPath.Child("successThreshold"), probe.GetSuccessThreshold())...)
	errs = append(errs, checkNonNegative(fldPath.Child("failureThreshold"), probe.GetFailureThreshold())...)
	if st := probe.GetSuccessThreshold(); successMustBeOne && st > 1 {
		errs = append(errs, field.Invalid(fldPath.Child("successThreshold"), st, "must be 1"))
	}
	return errs
}

// validateVolumeMounts checks that every mount names a volume of the pod and
// that mount paths are absolute and unique.
func validateVolumeMounts(mounts []*meridianv1.VolumeMount, volumes map[string]bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := map[string]bool{}
	for i, m := range mounts {
		p := fldPath.Index(i)
		switch {
		case m.GetName() == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case !volumes[m.GetName()]:
			errs = append(errs, field.NotFound(p.Child("name"), m.GetName()))
		}
		switch mp := m.GetMountPath(); {
		case mp == "":
			errs = append(errs, field.Required(p.Child("mountPath"), ""))
		case paths[mp]:
			errs = append(errs, field.Invalid(p.Child("mountPath"), mp, "must be unique"))
		default:
			paths[mp] = true
		}
		if sp := m.GetSubPath(); sp != "" {
			errs = append(errs, validateLocalPath(p.Child("subPath"), sp)...)
		}
	}
	return errs
}
