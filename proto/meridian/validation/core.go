package validation

import (
	"fmt"
	"net/netip"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Service types.
const (
	serviceClusterIP    = "ClusterIP"
	serviceNodePort     = "NodePort"
	serviceLoadBalancer = "LoadBalancer"
	serviceExternalName = "ExternalName"
)

// maxConfigSize bounds the data of a ConfigMap or Secret, as in Kubernetes.
const maxConfigSize = 1024 * 1024

func validateNamespaceSpec(spec *meridianv1.NamespaceSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, f := range spec.GetFinalizers() {
		errs = append(errs, validateLabelKey(f, fldPath.Child("finalizers").Index(i))...)
	}
	return errs
}

// validateServiceSpec checks a Service: its type, its ports (numbers, names,
// protocols, target ports), its cluster IP and its selector.
func validateServiceSpec(spec *meridianv1.ServiceSpec, fldPath *field.Path) field.ErrorList {
	typ := spec.GetType()
	errs := checkOneOf(fldPath.Child("type"), typ, false, serviceClusterIP, serviceNodePort, serviceLoadBalancer, serviceExternalName)
	if typ == serviceExternalName {
		if en := strings.TrimSuffix(spec.GetExternalName(), "."); en == "" {
			errs = append(errs, field.Required(fldPath.Child("externalName"), "when `type` is 'ExternalName'"))
		} else {
			errs = append(errs, checkName(fldPath.Child("externalName"), en, dns1123Subdomain)...)
		}
		if spec.GetClusterIp() != "" {
			errs = append(errs, field.Forbidden(fldPath.Child("clusterIP"), "may not be set when `type` is 'ExternalName'"))
		}
	}
	headless := spec.GetClusterIp() == "None"
	if len(spec.GetPorts()) == 0 && typ != serviceExternalName && !headless {
		errs = append(errs, field.Required(fldPath.Child("ports"), ""))
	}
	errs = append(errs, validateServicePorts(spec, fldPath.Child("ports"))...)
	if ip := spec.GetClusterIp(); ip != "" && ip != "None" {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, field.Invalid(fldPath.Child("clusterIP"), ip, "must be a valid IP address or 'None'"))
		}
	}
	for i, ip := range spec.GetClusterIps() {
		p := fldPath.Child("clusterIPs").Index(i)
		if _, err := netip.ParseAddr(ip); err != nil && ip != "None" {
			errs = append(errs, field.Invalid(p, ip, "must be a valid IP address or 'None'"))
		} else if i == 0 && spec.GetClusterIp() != "" && ip != spec.GetClusterIp() {
			errs = append(errs, field.Invalid(p, ip, "must match `clusterIP` when both are set"))
		}
	}
	errs = append(errs, checkOneOf(fldPath.Child("sessionAffinity"), spec.GetSessionAffinity(), false, "None", "ClientIP")...)
	return append(errs, validateLabels(spec.GetSelector(), fldPath.Child("selector"))...)
}

func validateServicePorts(spec *meridianv1.ServiceSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	ports := spec.GetPorts()
	names := map[string]bool{}
	seen := map[string]bool{}
	nodePorts := spec.GetType() == serviceNodePort || spec.GetType() == serviceLoadBalancer
	for i, port := range ports {
		p := fldPath.Index(i)
		switch name := port.GetName(); {
		case name == "" && len(ports) > 1:
			errs = append(errs, field.Required(p.Child("name"), "when a Service has more than one port"))
		case name == "":
		case names[name]:
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		default:
			names[name] = true
			errs = append(errs, checkName(p.Child("name"), name, dns1123Label)...)
		}
		if port.GetPort() == 0 {
			errs = append(errs, field.Required(p.Child("port"), ""))
		} else {
			errs = append(errs, checkPort(p.Child("port"), port.GetPort())...)
		}
		errs = append(errs, checkOneOf(p.Child("protocol"), port.GetProtocol(), false, protocols...)...)
		if tp := port.GetTargetPort(); tp.GetValue() != nil {
			errs = append(errs, checkPortOrName(p.Child("targetPort"), tp)...)
		}
		if np := port.GetNodePort(); np != 0 {
			if !nodePorts {
				errs = append(errs, field.Forbidden(p.Child("nodePort"), "may only be used when `type` is 'NodePort' or 'LoadBalancer'"))
			} else {
				errs = append(errs, checkPort(p.Child("nodePort"), np)...)
			}
		}
		protocol := port.GetProtocol()
		if protocol == "" {
			protocol = "TCP"
		}
		key := fmt.Sprintf("%d/%s", port.GetPort(), protocol)
		if port.GetPort() != 0 && seen[key] {
			errs = append(errs, field.Duplicate(p, key))
		}
		seen[key] = true
	}
	return errs
}

// validateConfigMap checks the keys of data and binaryData, that no key is
// in both, and the total size.
func validateConfigMap(cm *meridianv1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for _, k := range sortedKeys(cm.GetData()) {
		errs = append(errs, checkConfigKey(field.NewPath("data").Key(k), k)...)
		size += len(cm.GetData()[k])
	}
	for _, k := range sortedKeys(cm.GetBinaryData()) {
		p := field.NewPath("binaryData").Key(k)
		errs = append(errs, checkConfigKey(p, k)...)
		if _, dup := cm.GetData()[k]; dup {
			errs = append(errs, field.Invalid(p, k, "duplicate of key present in data"))
		}
		size += len(cm.GetBinaryData()[k])
	}
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxConfigSize))
	}
	return errs
}

// validateSecret checks the keys of data and stringData, the total size,
// and the keys a TLS secret must have.
func validateSecret(s *meridianv1.Secret) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for _, k := range sortedKeys(s.GetData()) {
		errs = append(errs, checkConfigKey(field.NewPath("data").Key(k), k)...)
		size += len(s.GetData()[k])
	}
	for _, k := range sortedKeys(s.GetStringData()) {
		errs = append(errs, checkConfigKey(field.NewPath("stringData").Key(k), k)...)
		size += len(s.GetStringData()[k])
	}
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxConfigSize))
	}
	if s.GetType() == "kubernetes.io/tls" {
		for _, k := range []string{"tls.crt", "tls.key"} {
			_, inData := s.GetData()[k]
			_, inString := s.GetStringData()[k]
			if !inData && !inString {
				errs = append(errs, field.Required(field.NewPath("data").Key(k), "a kubernetes.io/tls Secret needs it"))
			}
		}
	}
	return errs
}

func checkConfigKey(fldPath *field.Path, k string) field.ErrorList {
	if msgs := k8svalidation.IsConfigMapKey(k); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(fldPath, k, strings.Join(msgs, "; "))}
	}
	return nil
}

func validateEvent(e *meridianv1.Event) field.ErrorList {
	errs := checkOneOf(field.NewPath("type"), e.GetType(), false, "Normal", "Warning")
	return append(errs, checkNonNegative(field.NewPath("count"), e.GetCount())...)
}
