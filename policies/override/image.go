package override

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// image is a container image reference taken apart:
//
//	[registry/]repository[:tag][@digest]
//
// such as localhost:5000/team/app:1.2 or reg.io/app@sha256:0123…. Nothing
// is filled in: "nginx" has no registry and no tag (docker.io and latest
// are the runtime's defaults, not part of what the user wrote, and an
// override must not add them behind the user's back).
type image struct {
	// registry is the first path component when it names a host: it holds
	// a '.' or a ':' (a domain or a port), is "localhost", or has upper-case
	// letters (which repositories may not) — the rule Docker uses.
	registry string
	// repository is the rest of the path: "nginx", "library/nginx",
	// "team/app".
	repository string
	// tag follows the last ':' of the last path component.
	tag string
	// digest follows the '@': "sha256:" and the hex of the content hash.
	digest string
}

// parseImage takes an image reference apart and checks its grammar
// (a lenient form of the OCI distribution reference grammar: it does not
// limit lengths, and accepts upper case in a registry).
func parseImage(s string) (image, error) {
	var im image
	if s == "" {
		return im, errors.New("empty image")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return im, errors.New("has a space or a control character")
	}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, im.digest = rest[:i], rest[i+1:]
		if err := checkDigest(im.digest); err != nil {
			return im, err
		}
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 && isRegistry(rest[:i]) {
		im.registry, rest = rest[:i], rest[i+1:]
		if err := checkRegistry(im.registry); err != nil {
			return im, err
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		rest, im.tag = rest[:i], rest[i+1:]
		if err := checkTag(im.tag); err != nil {
			return im, err
		}
	}
	im.repository = rest
	return im, checkRepository(im.repository)
}

// String puts the reference back together.
func (im image) String() string {
	var b strings.Builder
	if im.registry != "" {
		b.WriteString(im.registry)
		b.WriteByte('/')
	}
	b.WriteString(im.repository)
	if im.tag != "" {
		b.WriteByte(':')
		b.WriteString(im.tag)
	}
	if im.digest != "" {
		b.WriteByte('@')
		b.WriteString(im.digest)
	}
	return b.String()
}

// isRegistry reports whether the first path component of an image names a
// registry host rather than a repository namespace.
func isRegistry(first string) bool {
	return strings.ContainsAny(first, ".:") || first == "localhost" || first != strings.ToLower(first)
}

// The grammar, after the OCI distribution reference grammar
// (github.com/distribution/reference), without its length limits.
var (
	// pathComponentRE is one '/'-separated component of a repository.
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// tagRE is a tag.
	tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// digestRE is algorithm:hex, with at least 32 hex digits.
	digestRE = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Fa-f0-9]{32,}$`)
	// registryRE is a host name, an IPv4 address or a bracketed IPv6
	// address, and an optional port.
	registryRE = regexp.MustCompile(`^(?:(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*|\[[A-Fa-f0-9:]+\])(?::[0-9]+)?$`)
)

// isDigest reports whether s has the form of a digest.
func isDigest(s string) bool { return digestRE.MatchString(s) }

func checkDigest(d string) error {
	if !isDigest(d) {
		return fmt.Errorf("digest %q is not algorithm:hex (at least 32 hex digits)", d)
	}
	return nil
}

func checkRegistry(r string) error {
	if !registryRE.MatchString(r) {
		return fmt.Errorf("registry %q is not host[:port]", r)
	}
	return nil
}

func checkRepository(repo string) error {
	if repo == "" {
		return errors.New("empty repository")
	}
	for _, part := range strings.Split(repo, "/") {
		if !pathComponentRE.MatchString(part) {
			return fmt.Errorf("repository %q: path component %q is not lower-case letters and digits separated by '.', '_', '__' or '-'", repo, part)
		}
	}
	return nil
}

func checkTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("tag %q is not up to 128 letters, digits, '_', '.' or '-' (not starting with '.' or '-')", tag)
	}
	return nil
}
