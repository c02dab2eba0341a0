package validation

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Valid objects of each kind; each test case breaks one in a known way.

func meta(name string) *meridianv1.ObjectMeta {
	return &meridianv1.ObjectMeta{Name: name, Namespace: "demo", Labels: map[string]string{"app": name}}
}

func container(name string) *meridianv1.Container {
	return &meridianv1.Container{
		Name:    name,
		Command: []string{"sh", "-c", "sleep 3600"},
		Ports:   []*meridianv1.ContainerPort{{Name: "http", ContainerPort: 8080}},
	}
}

func template(app string, restart string) *meridianv1.PodTemplateSpec {
	return &meridianv1.PodTemplateSpec{
		Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:     &meridianv1.PodSpec{RestartPolicy: restart, Containers: []*meridianv1.Container{container(app)}},
	}
}

func selector(app string) *meridianv1.LabelSelector {
	return &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func intVal(i int32) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: i}}
}

func strVal(s string) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: s}}
}

func deployment(mut func(*meridianv1.Deployment)) resource.Object {
	d := &meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment", Metadata: meta("web"),
		Spec: &meridianv1.DeploymentSpec{Replicas: proto.Int32(2), Selector: selector("web"), Template: template("web", "")}}
	mut(d)
	return d
}

func statefulSet(mut func(*meridianv1.StatefulSet)) resource.Object {
	s := &meridianv1.StatefulSet{Metadata: meta("kv"),
		Spec: &meridianv1.StatefulSetSpec{ServiceName: "kv", Selector: selector("kv"), Template: template("kv", "Always")}}
	mut(s)
	return s
}

func daemonSet(mut func(*meridianv1.DaemonSet)) resource.Object {
	d := &meridianv1.DaemonSet{Metadata: meta("agent"),
		Spec: &meridianv1.DaemonSetSpec{Selector: selector("agent"), Template: template("agent", "")}}
	mut(d)
	return d
}

func job(mut func(*meridianv1.Job)) resource.Object {
	j := &meridianv1.Job{Metadata: meta("migrate"),
		Spec: &meridianv1.JobSpec{BackoffLimit: proto.Int32(3), Template: template("migrate", "Never")}}
	mut(j)
	return j
}

func cronJob(mut func(*meridianv1.CronJob)) resource.Object {
	c := &meridianv1.CronJob{Metadata: meta("report"), Spec: &meridianv1.CronJobSpec{
		Schedule:    "*/15 9-17 * * MON-FRI",
		JobTemplate: &meridianv1.JobTemplateSpec{Spec: &meridianv1.JobSpec{Template: template("report", "OnFailure")}},
	}}
	mut(c)
	return c
}

func service(mut func(*meridianv1.Service)) resource.Object {
	s := &meridianv1.Service{Metadata: meta("web"), Spec: &meridianv1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []*meridianv1.ServicePort{{Name: "http", Port: 80, TargetPort: strVal("http")}},
	}}
	mut(s)
	return s
}

func cluster(mut func(*meridianv1.Cluster)) resource.Object {
	c := &meridianv1.Cluster{Metadata: &meridianv1.ObjectMeta{Name: "prod-a1"}, Spec: &meridianv1.ClusterSpec{
		Region: "region-a", Datacenter: "dc-a1",
		Taints: []*meridianv1.Taint{{Key: "meridian.io/dr", Value: "true", Effect: "NoSchedule"}},
	}}
	mut(c)
	return c
}

func propagation(mut func(*meridianv1.PropagationPolicy)) resource.Object {
	p := &meridianv1.PropagationPolicy{Metadata: meta("spread"), Spec: &meridianv1.PropagationSpec{
		ResourceSelectors: []*meridianv1.ResourceSelector{{ApiVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
		Placement: &meridianv1.Placement{
			ClusterAffinity: &meridianv1.ClusterAffinity{ClusterNames: []string{"prod-a1", "dr-b1"}},
			SpreadConstraints: []*meridianv1.SpreadConstraint{
				{SpreadByField: "region", MinGroups: 1, MaxGroups: 2},
			},
			ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{
				ReplicaSchedulingType: "Divided", ReplicaDivisionPreference: "Weighted",
				WeightPreference: &meridianv1.ClusterPreferences{DynamicWeight: "AvailableReplicas"},
			},
		},
	}}
	mut(p)
	return p
}

func override(mut func(*meridianv1.OverridePolicy)) resource.Object {
	o := &meridianv1.OverridePolicy{Metadata: meta("override"), Spec: &meridianv1.OverrideSpec{
		ResourceSelectors: []*meridianv1.ResourceSelector{{ApiVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
		OverrideRules: []*meridianv1.RuleWithCluster{{
			TargetCluster: &meridianv1.ClusterAffinity{ClusterNames: []string{"dr-b1"}},
			Overriders: &meridianv1.Overriders{
				ImageOverrider:  []*meridianv1.ImageOverrider{{Component: "Registry", Operator: "replace", Value: "mirror.example.com"}},
				ArgsOverrider:   []*meridianv1.CommandArgsOverrider{{ContainerName: "web", Operator: "add", Value: []string{"--verbose"}}},
				LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"site": "dr"}}},
			},
		}},
	}}
	mut(o)
	return o
}

func keep[T any](T) {}

func TestValidObjects(t *testing.T) {
	objects := []resource.Object{
		deployment(keep), statefulSet(keep), daemonSet(keep), job(keep), cronJob(keep), service(keep),
		cluster(keep), propagation(keep), override(keep),
		&meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: "demo"}},
		&meridianv1.ConfigMap{Metadata: meta("config"), Data: map[string]string{"a.conf": "x"}, BinaryData: map[string][]byte{"b.bin": {1}}},
		&meridianv1.Secret{Metadata: meta("tls"), Type: "kubernetes.io/tls",
			Data: map[string][]byte{"tls.crt": []byte("c")}, StringData: map[string]string{"tls.key": "k"}},
		&meridianv1.Pod{Metadata: meta("p"), Spec: template("p", "OnFailure").Spec},
		&meridianv1.Node{Metadata: &meridianv1.ObjectMeta{Name: "node-1"}},
		&meridianv1.Event{Metadata: meta("e"), Type: "Warning", Count: 2},
		&meridianv1.ReplicaSet{Metadata: meta("web-1"), Spec: &meridianv1.ReplicaSetSpec{
			Replicas: proto.Int32(0), Selector: selector("web"), Template: template("web", "Always")}},
		job(func(j *meridianv1.Job) { j.Spec.ManualSelector = true; j.Spec.Selector = selector("migrate") }),
		service(func(s *meridianv1.Service) { s.Spec.Ports = nil; s.Spec.ClusterIp = "None" }),
		service(func(s *meridianv1.Service) {
			s.Spec.Type = "ExternalName"
			s.Spec.ExternalName = "db.example.com."
			s.Spec.Ports = nil
		}),
	}
	for _, obj := range objects {
		if errs := Validate(obj); len(errs) > 0 {
			t.Errorf("%T: %v", obj, errs.ToAggregate())
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		obj  resource.Object
		want []string
	}{
		{"nil object", nil, []string{"object: Required value: no object to validate"}},
		{"wrong type meta", deployment(func(d *meridianv1.Deployment) { d.ApiVersion = "apps/v2"; d.Kind = "Job" }), []string{
			`apiVersion: Unsupported value: "apps/v2": supported values: "apps/v1"`,
			`kind: Invalid value: "Job": must be Deployment for this object`,
		}},
		{"missing spec", deployment(func(d *meridianv1.Deployment) { d.Spec = nil }), []string{"spec: Required value"}},
		{"progress deadline", deployment(func(d *meridianv1.Deployment) {
			d.Spec.MinReadySeconds = 30
			d.Spec.ProgressDeadlineSeconds = proto.Int32(30)
		}), []string{"spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds"}},
		{"rolling bounds", deployment(func(d *meridianv1.Deployment) {
			d.Spec.Strategy = &meridianv1.DeploymentStrategy{RollingUpdate: &meridianv1.RollingUpdateDeployment{MaxSurge: intVal(-1), MaxUnavailable: strVal("150%")}}
		}), []string{
			"spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
			`spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%`,
		}},
		{"selector expressions", deployment(func(d *meridianv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []*meridianv1.LabelSelectorRequirement{
				{Key: "tier", Operator: "In"},
				{Key: "zone", Operator: "Exists", Values: []string{"a"}},
				{Operator: "DoesNotExist"},
			}
		}), []string{
			"spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
			"spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
			"spec.selector.matchExpressions[2].key: Required value",
		}},
		{"selector expression does not match", deployment(func(d *meridianv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []*meridianv1.LabelSelectorRequirement{{Key: "tier", Operator: "NotIn", Values: []string{"a"}}, {Key: "app", Operator: "DoesNotExist"}}
		}), []string{"spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"}},
		{"replicaset", &meridianv1.ReplicaSet{Metadata: meta("web-1"), Spec: &meridianv1.ReplicaSetSpec{
			Replicas: proto.Int32(-1), Selector: selector("web"), Template: template("api", "")}}, []string{
			"spec.replicas: Invalid value: -1: must be greater than or equal to 0",
			"spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`",
		}},
		{"statefulset", statefulSet(func(s *meridianv1.StatefulSet) {
			s.Spec.PodManagementPolicy = "Random"
			s.Spec.UpdateStrategy = &meridianv1.StatefulSetUpdateStrategy{Type: "OnDelete",
				RollingUpdate: &meridianv1.RollingUpdateStatefulSetStrategy{Partition: proto.Int32(-1), MaxUnavailable: intVal(0)}}
		}), []string{
			`spec.podManagementPolicy: Unsupported value: "Random": supported values: "OrderedReady", "Parallel"`,
			"spec.updateStrategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'OnDelete'",
			"spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
			"spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: must be greater than 0",
		}},
		{"daemonset", daemonSet(func(d *meridianv1.DaemonSet) {
			d.Spec.UpdateStrategy = &meridianv1.DaemonSetUpdateStrategy{Type: "Recreate"}
			d.Spec.Template.Spec.RestartPolicy = "OnFailure"
		}), []string{
			`spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"`,
			`spec.updateStrategy.type: Unsupported value: "Recreate": supported values: "RollingUpdate", "OnDelete"`,
		}},
		{"job", job(func(j *meridianv1.Job) {
			j.Spec.Selector = selector("other")
			j.Spec.CompletionMode = "Indexed"
			j.Spec.ActiveDeadlineSeconds = proto.Int64(0)
			j.Spec.Template.Spec.RestartPolicy = ""
		}), []string{
			"spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0",
			"spec.completions: Required value: when completion mode is Indexed",
			"spec.template.metadata.labels: Invalid value: {\"app\":\"migrate\"}: `selector` does not match template `labels`",
			`spec.template.spec.restartPolicy: Required value: supported values: "OnFailure", "Never"`,
		}},
		{"cronjob", cronJob(func(c *meridianv1.CronJob) {
			c.Metadata.Name = strings.Repeat("r", 53)
			c.Spec.Schedule = "CRON_TZ=UTC 0 * * * *"
			c.Spec.JobTemplate = nil
		}), []string{
			`metadata.name: Invalid value: "` + strings.Repeat("r", 53) + `": must be no more than 52 characters`,
			`spec.schedule: Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use the timeZone field instead`,
			"spec.jobTemplate: Required value",
		}},
		{"env", deployment(func(d *meridianv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Env = []*meridianv1.EnvVar{
				{Name: "A", Value: "x", ValueFrom: &meridianv1.EnvVarSource{FieldRef: &meridianv1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
				{Name: "B", ValueFrom: &meridianv1.EnvVarSource{}},
				{Name: "C", ValueFrom: &meridianv1.EnvVarSource{FieldRef: &meridianv1.ObjectFieldSelector{FieldPath: "status.phase"}}},
				{Name: "D", ValueFrom: &meridianv1.EnvVarSource{ConfigMapKeyRef: &meridianv1.KeySelector{Name: "cfg"}}},
			}
			d.Spec.Template.Spec.Containers[0].EnvFrom = []*meridianv1.EnvFromSource{{
				ConfigMapRef: &meridianv1.LocalObjectReference{Name: "cfg"}, SecretRef: &meridianv1.LocalObjectReference{Name: "sec"},
			}}
		}), []string{
			"spec.template.spec.containers[0].env[0].valueFrom: Forbidden: may not be specified when `value` is not empty",
			"spec.template.spec.containers[0].env[1].valueFrom: Required value: must specify one of: `configMapKeyRef`, `secretKeyRef` or `fieldRef`",
			`spec.template.spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.podIP", "metadata.labels['<KEY>']", "metadata.annotations['<KEY>']"`,
			"spec.template.spec.containers[0].env[3].valueFrom.configMapKeyRef.key: Required value",
			"spec.template.spec.containers[0].envFrom[0].secretRef: Forbidden: may not have more than one field specified at a time",
		}},
		{"volumes and mounts", deployment(func(d *meridianv1.Deployment) {
			d.Spec.Template.Spec.Volumes = []*meridianv1.Volume{
				{Name: "none"},
				{Name: "two", EmptyDir: &meridianv1.EmptyDirVolumeSource{SizeLimit: "-1Gi"}, Secret: &meridianv1.SecretVolumeSource{SecretName: "s"}},
				{Name: "cfg", ConfigMap: &meridianv1.ConfigMapVolumeSource{Items: []*meridianv1.KeyToPath{{Key: "a", Path: "../etc/passwd"}}, DefaultMode: proto.Int32(0o1777)}},
			}
			d.Spec.Template.Spec.Containers[0].VolumeMounts = []*meridianv1.VolumeMount{
				{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "two", MountPath: "/etc/cfg", SubPath: "/abs"},
			}
		}), []string{
			"spec.template.spec.volumes[0]: Required value: must specify a volume type (configMap, secret or emptyDir)",
			`spec.template.spec.volumes[1].emptyDir.sizeLimit: Invalid value: "-1Gi": must be greater than or equal to 0`,
			"spec.template.spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
			"spec.template.spec.volumes[2].configMap.name: Required value",
			"spec.template.spec.volumes[2].configMap.defaultMode: Invalid value: 1023: must be a number between 0 and 0777 (octal), both inclusive",
			`spec.template.spec.volumes[2].configMap.items[0].path: Invalid value: "../etc/passwd": must not contain '..'`,
			`spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/etc/cfg": must be unique`,
			`spec.template.spec.containers[0].volumeMounts[1].subPath: Invalid value: "/abs": must be a relative path`,
		}},
		{"probes and init containers", deployment(func(d *meridianv1.Deployment) {
			c := d.Spec.Template.Spec.Containers[0]
			c.LivenessProbe = &meridianv1.Probe{Exec: &meridianv1.ExecAction{}, SuccessThreshold: 2, PeriodSeconds: -1}
			c.ReadinessProbe = &meridianv1.Probe{HttpGet: &meridianv1.HTTPGetAction{Path: "healthz", Scheme: "FTP"}}
			init := container("setup")
			init.Ports = nil
			init.ReadinessProbe = &meridianv1.Probe{TcpSocket: &meridianv1.TCPSocketAction{Port: intVal(80)}}
			d.Spec.Template.Spec.InitContainers = []*meridianv1.Container{init}
		}), []string{
			"spec.template.spec.containers[0].readinessProbe.httpGet.port: Required value: a port number or name",
			`spec.template.spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS"`,
			`spec.template.spec.containers[0].readinessProbe.httpGet.path: Invalid value: "healthz": must be an absolute path (start with '/')`,
			"spec.template.spec.containers[0].livenessProbe.exec.command: Required value",
			"spec.template.spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
			"spec.template.spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
			"spec.template.spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers",
		}},
		{"container ports and resources", deployment(func(d *meridianv1.Deployment) {
			c := d.Spec.Template.Spec.Containers[0]
			c.Ports = append(c.Ports, &meridianv1.ContainerPort{Name: "Metrics", ContainerPort: 9090, HostPort: 70000})
			c.Resources = &meridianv1.ResourceRequirements{Requests: map[string]string{"memory": "1Gi", "cpu": "x"}, Limits: map[string]string{"memory": "512Mi"}}
			c.ImagePullPolicy = "Sometimes"
		}), []string{
			`spec.template.spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"`,
			`spec.template.spec.containers[0].ports[1].name: Invalid value: "Metrics": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`,
			"spec.template.spec.containers[0].ports[1].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
			`spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: "x": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`,
			`spec.template.spec.containers[0].resources.requests[memory]: Invalid value: "1Gi": must be less than or equal to memory limit of 512Mi`,
		}},
		{"tolerations", deployment(func(d *meridianv1.Deployment) {
			d.Spec.Template.Spec.Tolerations = []*meridianv1.Toleration{
				{Key: "a", Operator: "Exists", Value: "x"},
				{Operator: "Equal", Value: "y"},
				{Key: "b", Effect: "NoSchedule", TolerationSeconds: proto.Int64(30)},
			}
		}), []string{
			"spec.template.spec.tolerations[0].value: Invalid value: \"x\": value must be empty when `operator` is 'Exists'",
			"spec.template.spec.tolerations[1].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
			"spec.template.spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
		}},
		{"service", service(func(s *meridianv1.Service) {
			s.Spec.ClusterIp = "10.0.0.300"
			s.Spec.SessionAffinity = "Cookie"
			s.Spec.Ports = append(s.Spec.Ports, &meridianv1.ServicePort{Name: "again", Port: 80, NodePort: 30080})
		}), []string{
			"spec.ports[1].nodePort: Forbidden: may only be used when `type` is 'NodePort' or 'LoadBalancer'",
			`spec.ports[1]: Duplicate value: "80/TCP"`,
			`spec.clusterIP: Invalid value: "10.0.0.300": must be a valid IP address or 'None'`,
			`spec.sessionAffinity: Unsupported value: "Cookie": supported values: "None", "ClientIP"`,
		}},
		{"external name service", service(func(s *meridianv1.Service) { s.Spec.Type = "ExternalName"; s.Spec.ClusterIp = "10.0.0.1" }), []string{
			"spec.externalName: Required value: when `type` is 'ExternalName'",
			"spec.clusterIP: Forbidden: may not be set when `type` is 'ExternalName'",
		}},
		{"service without ports", service(func(s *meridianv1.Service) { s.Spec.Ports = nil }), []string{"spec.ports: Required value"}},
		{"tls secret", &meridianv1.Secret{Metadata: meta("tls"), Type: "kubernetes.io/tls", Data: map[string][]byte{"tls.crt": nil}}, []string{
			"data[tls.key]: Required value: a kubernetes.io/tls Secret needs it",
		}},
		{"cluster taints", cluster(func(c *meridianv1.Cluster) {
			c.Metadata.Labels = map[string]string{"bad key!": "v"}
			c.Spec.Datacenter = "DC_1"
			c.Spec.Taints = append(c.Spec.Taints, &meridianv1.Taint{Key: "meridian.io/dr", Effect: "NoSchedule"}, &meridianv1.Taint{Key: "x"})
		}), []string{
			`metadata.labels: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
			`spec.datacenter: Invalid value: "DC_1": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			`spec.taints[1]: Duplicate value: "meridian.io/dr:NoSchedule"`,
			`spec.taints[2].effect: Required value: supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`,
		}},
		{"placement", propagation(func(p *meridianv1.PropagationPolicy) {
			pl := p.Spec.Placement
			pl.ClusterAffinity.FieldSelector = &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{
				{Key: "zone", Operator: "In", Values: []string{"a"}}, {Key: "region", Operator: "Exists"},
			}}
			pl.ClusterAffinities = []*meridianv1.ClusterAffinityTerm{{AffinityName: "a"}, {AffinityName: "a"}}
			pl.SpreadConstraints = append(pl.SpreadConstraints, &meridianv1.SpreadConstraint{SpreadByField: "region", SpreadByLabel: "tier"})
			pl.ReplicaScheduling = &meridianv1.ReplicaSchedulingStrategy{
				ReplicaSchedulingType: "Duplicated", ReplicaDivisionPreference: "Aggregated",
				WeightPreference: &meridianv1.ClusterPreferences{DynamicWeight: "AvailableReplicas",
					StaticWeightList: []*meridianv1.StaticClusterWeight{{Weight: 1}}},
			}
		}), []string{
			`spec.placement.clusterAffinity.fieldSelector.matchExpressions[0].key: Unsupported value: "zone": supported values: "provider", "region", "datacenter"`,
			`spec.placement.clusterAffinity.fieldSelector.matchExpressions[1].operator: Unsupported value: "Exists": supported values: "In", "NotIn"`,
			"spec.placement.clusterAffinities: Forbidden: may not be set together with `clusterAffinity`",
			`spec.placement.clusterAffinities[1].affinityName: Duplicate value: "a"`,
			"spec.placement.spreadConstraints[1].spreadByLabel: Forbidden: may not be set together with `spreadByField`",
			"spec.placement.replicaScheduling.replicaDivisionPreference: Forbidden: may only be set when `replicaSchedulingType` is 'Divided'",
			"spec.placement.replicaScheduling.weightPreference: Forbidden: may only be set when `replicaDivisionPreference` is 'Weighted'",
			"spec.placement.replicaScheduling.weightPreference.dynamicWeight: Forbidden: may not be set together with `staticWeightList`",
			"spec.placement.replicaScheduling.weightPreference.staticWeightList[0].targetCluster: Required value",
		}},
		{"overriders", override(func(o *meridianv1.OverridePolicy) {
			ov := o.Spec.OverrideRules[0].Overriders
			ov.ImageOverrider[0].Value = ""
			ov.ArgsOverrider[0].ContainerName = ""
			ov.LabelsOverrider[0].Value["site"] = "disaster recovery"
			ov.Replicas = proto.Int32(-2)
			o.Spec.OverrideRules = append(o.Spec.OverrideRules, &meridianv1.RuleWithCluster{})
			o.Spec.ResourceSelectors[0].ApiVersion = "v1"
		}), []string{
			`spec.resourceSelectors[0].apiVersion: Unsupported value: "v1": supported values: "apps/v1"`,
			"spec.overrideRules[0].overriders.imageOverrider[0].value: Required value: unless `operator` is 'remove'",
			"spec.overrideRules[0].overriders.argsOverrider[0].containerName: Required value",
			`spec.overrideRules[0].overriders.labelsOverrider[0].value[site]: Invalid value: "disaster recovery": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
			"spec.overrideRules[0].overriders.replicas: Invalid value: -2: must be greater than or equal to 0",
			"spec.overrideRules[1].overriders: Required value",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Validate(tt.obj)
			got := make([]string, len(errs))
			for i, e := range errs {
				got[i] = e.Error()
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestValidateNeverPanics validates, for every kind, an object whose every
// message field (to a depth) is present but empty and whose every list of
// messages holds one empty element: the shapes a client may send that a
// decoder of well-formed manifests never makes.
func TestValidateNeverPanics(t *testing.T) {
	for _, k := range resource.All() {
		for depth := 0; depth <= 8; depth++ {
			obj := k.New()
			fillEmpty(obj.ProtoReflect(), depth)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s at depth %d: panic: %v", k.Kind, depth, r)
					}
				}()
				Validate(obj)
			}()
		}
		if errs := Validate(k.New()); len(errs) == 0 && k.Kind != "Node" && k.Kind != "Event" {
			t.Errorf("an empty %s is valid", k.Kind)
		}
	}
}

// fillEmpty sets every message field of m, and one element of every list
// of messages, to an empty message, down to depth levels.
func fillEmpty(m protoreflect.Message, depth int) {
	if depth == 0 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.IsMap() || fd.ContainingOneof() != nil {
			continue
		}
		if fd.IsList() {
			list := m.Mutable(fd).List()
			el := list.NewElement()
			fillEmpty(el.Message(), depth-1)
			list.Append(el)
			continue
		}
		fillEmpty(m.Mutable(fd).Message(), depth-1)
	}
}
