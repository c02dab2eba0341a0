package member_test

import (
	"io"
	"strings"
	"testing"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestConfigMapAndSecretReachThePod: env from a ConfigMap key, envFrom a
// Secret, and a ConfigMap volume; a pod whose ConfigMap does not exist yet
// waits with CreateContainerConfigError and starts once it appears.
func TestConfigMapAndSecretReachThePod(t *testing.T) {
	e := startMember(t, t.TempDir(), nil)
	labels := map[string]string{"app": "cfg"}
	e.apply(&meridianv1.Secret{
		ApiVersion: "v1", Kind: "Secret",
		Metadata: &meridianv1.ObjectMeta{Name: "creds", Namespace: "default"},
		Data:     map[string][]byte{"TOKEN": []byte("s3cret")},
	})
	e.apply(deploymentOf("cfg", 1, &meridianv1.PodTemplateSpec{
		Metadata: &meridianv1.ObjectMeta{Labels: labels},
		Spec: &meridianv1.PodSpec{
			Volumes: []*meridianv1.Volume{{Name: "conf", ConfigMap: &meridianv1.ConfigMapVolumeSource{Name: "settings"}}},
			Containers: []*meridianv1.Container{{
				Name:    "main",
				Command: []string{"sh", "-c", `echo "greeting=$GREETING token=$TOKEN file=$(cat etc/app/greeting)"; exec sleep 3600`},
				Env: []*meridianv1.EnvVar{{Name: "GREETING", ValueFrom: &meridianv1.EnvVarSource{
					ConfigMapKeyRef: &meridianv1.KeySelector{Name: "settings", Key: "greeting"},
				}}},
				EnvFrom:      []*meridianv1.EnvFromSource{{SecretRef: &meridianv1.LocalObjectReference{Name: "creds"}}},
				VolumeMounts: []*meridianv1.VolumeMount{{Name: "conf", MountPath: "/etc/app"}},
			}},
		},
	}))
	e.waitFor("the pod to wait for its ConfigMap", 30*time.Second, func() bool {
		ps := e.pods("app=cfg")
		return len(ps) == 1 && ps[0].GetStatus().GetReason() == "CreateContainerConfigError" &&
			strings.Contains(ps[0].GetStatus().GetMessage(), `configmap "settings" not found`)
	})
	e.apply(&meridianv1.ConfigMap{
		ApiVersion: "v1", Kind: "ConfigMap",
		Metadata: &meridianv1.ObjectMeta{Name: "settings", Namespace: "default"},
		Data:     map[string]string{"greeting": "hello"},
	})
	want := "greeting=hello token=s3cret file=hello"
	e.waitFor("the pod to print its configuration", 30*time.Second, func() bool {
		ps := e.pods("app=cfg")
		if len(ps) != 1 || ps[0].GetStatus().GetPhase() != "Running" {
			return false
		}
		stream, err := e.log.Logs(e.ctx(), &meridianv1.LogsRequest{Namespace: "default", Pod: ps[0].GetMetadata().GetName()})
		if err != nil {
			return false
		}
		var out strings.Builder
		for {
			chunk, err := stream.Recv()
			if err == io.EOF || err != nil {
				break
			}
			out.Write(chunk.GetData())
		}
		return strings.Contains(out.String(), want)
	})
}
