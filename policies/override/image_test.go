package override

import (
	"errors"
	"strings"
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImage(t *testing.T) {
	tests := []struct {
		in   string
		want image
	}{
		{"nginx", image{repository: "nginx"}},
		{"nginx:1.25", image{repository: "nginx", tag: "1.25"}},
		{"library/nginx:1.25", image{repository: "library/nginx", tag: "1.25"}},
		{"docker.io/library/nginx:1.25", image{registry: "docker.io", repository: "library/nginx", tag: "1.25"}},
		{"localhost:5000/a/b:t", image{registry: "localhost:5000", repository: "a/b", tag: "t"}},
		{"localhost/a", image{registry: "localhost", repository: "a"}},
		{"reg.io/a@" + digest, image{registry: "reg.io", repository: "a", digest: digest}},
		{"reg.io:443/team/app:v1.2.3-rc_1@" + digest, image{registry: "reg.io:443", repository: "team/app", tag: "v1.2.3-rc_1", digest: digest}},
		{"Registry/app", image{registry: "Registry", repository: "app"}},
		{"10.0.0.1:5000/app", image{registry: "10.0.0.1:5000", repository: "app"}},
		{"[::1]:5000/app:1", image{registry: "[::1]:5000", repository: "app", tag: "1"}},
		{"my-org/my_app__x.y", image{repository: "my-org/my_app__x.y"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseImage(tt.in)
			if err != nil {
				t.Fatalf("parseImage(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("parseImage(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParseImageErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"nginx latest",
		"nginx:",
		"nginx:-bad",
		"nginx@",
		"nginx@sha256:abc",
		"nginx@" + strings.TrimPrefix(digest, "sha256:"),
		"reg.io/",
		"reg.io//app",
		"/app",
		"Nginx",
		"team/App",
		"app.",
		"reg.io:port/app",
		"reg..io/app",
		"a/-b",
	} {
		if im, err := parseImage(in); err == nil {
			t.Errorf("parseImage(%q) = %+v, want an error", in, im)
		}
	}
}

func TestOverriddenImage(t *testing.T) {
	tests := []struct {
		name, image, component, operator, value string
		want                                    string
		err                                     error
	}{
		{name: "registry add", image: "reg.io/app:1", component: "Registry", operator: "add", value: "-eu", want: "reg.io-eu/app:1"},
		{name: "registry add without registry", image: "app:1", component: "Registry", operator: "add", value: "reg.b", want: "reg.b/app:1"},
		{name: "registry replace", image: "docker.io/library/nginx:1.25", component: "Registry", operator: "replace", value: "mirror.b:5000", want: "mirror.b:5000/library/nginx:1.25"},
		{name: "registry replace without registry", image: "nginx", component: "Registry", operator: "replace", value: "registry.b", want: "registry.b/nginx"},
		{name: "registry remove", image: "localhost:5000/a/b:t", component: "Registry", operator: "remove", want: "a/b:t"},
		{name: "registry remove without registry", image: "a/b:t", component: "Registry", operator: "remove", want: "a/b:t"},
		{name: "repository add", image: "reg.io/app:1", component: "Repository", operator: "add", value: "-debug", want: "reg.io/app-debug:1"},
		{name: "repository replace", image: "reg.io/app@" + digest, component: "Repository", operator: "replace", value: "team/app2", want: "reg.io/team/app2@" + digest},
		{name: "repository remove is invalid", image: "reg.io/app:1", component: "Repository", operator: "remove", err: ErrInvalidImage},
		{name: "tag add", image: "nginx:1.25", component: "Tag", operator: "add", value: "-alpine", want: "nginx:1.25-alpine"},
		{name: "tag add without tag", image: "nginx", component: "Tag", operator: "add", value: "1.25", want: "nginx:1.25"},
		{name: "tag add drops digest", image: "nginx:1.25@" + digest, component: "Tag", operator: "add", value: "-x", want: "nginx:1.25-x"},
		{name: "tag replace", image: "reg.io/app:1.1", component: "Tag", operator: "replace", value: "1.2", want: "reg.io/app:1.2"},
		{name: "tag replace over digest", image: "reg.io/app@" + digest, component: "Tag", operator: "replace", value: "1.2", want: "reg.io/app:1.2"},
		{name: "tag replace by digest", image: "reg.io/app:1.1", component: "Tag", operator: "replace", value: digest, want: "reg.io/app@" + digest},
		{name: "tag remove", image: "reg.io/app:1.1@" + digest, component: "Tag", operator: "remove", want: "reg.io/app"},
		{name: "whole image replace", image: "nginx:1.25", operator: "replace", value: "registry.b/app:1.2", want: "registry.b/app:1.2"},
		{name: "whole image add", image: "reg.io/app", operator: "add", value: ":2", want: "reg.io/app:2"},
		{name: "whole image remove", image: "reg.io/app", operator: "remove", want: ""},
		{name: "whole image replace on empty", image: "", operator: "replace", value: "app:1", want: "app:1"},
		{name: "component on empty image is a no-op", image: "", component: "Registry", operator: "replace", value: "reg.b", want: ""},
		{name: "unparsable image", image: "Bad Image", component: "Tag", operator: "replace", value: "1", err: ErrInvalidImage},
		{name: "replace makes an invalid image", image: "app:1", component: "Registry", operator: "replace", value: "bad host", err: ErrInvalidImage},
		{name: "tag replace with invalid tag", image: "app:1", component: "Tag", operator: "replace", value: "-x", err: ErrInvalidImage},
		{name: "unknown operator", image: "app:1", component: "Tag", operator: "swap", value: "2", err: ErrInvalidOverrider},
		{name: "unknown component", image: "app:1", component: "Host", operator: "replace", value: "x", err: ErrInvalidOverrider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io := &meridianv1.ImageOverrider{Component: tt.component, Operator: tt.operator, Value: tt.value}
			got, err := overriddenImage(tt.image, io)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("overriddenImage(%q) = %q, %v; want error %v", tt.image, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("overriddenImage(%q): %v", tt.image, err)
			}
			want := tt.want
			if want == "" && tt.operator != "remove" {
				want = tt.image
			}
			if got != want {
				t.Fatalf("overriddenImage(%q) = %q, want %q", tt.image, got, want)
			}
		})
	}
}
