package manifest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// StdinSource is the source name of manifests read from standard input.
const StdinSource = "<stdin>"

// manifestExts are the file name extensions Load reads from a directory.
var manifestExts = []string{".yaml", ".yml", ".json"}

// Load decodes the manifests named by paths, in order. Each path is a file, a
// directory (its *.yaml, *.yml and *.json files in name order; directories
// below it are not read, nor are hidden files such as editors' backups), or
// "-" for stdin (source "<stdin>"). A file named explicitly is read whatever
// its extension.
//
// Like Decode, Load checks everything before it answers: if any path cannot
// be read or any manifest has a problem, it returns no documents and an
// Errors listing every problem.
func Load(paths []string, stdin io.Reader) ([]Document, error) {
	var (
		docs []Document
		errs Errors
	)
	add := func(data []byte, source string) {
		d, err := Decode(data, source)
		var es Errors
		switch {
		case errors.As(err, &es):
			errs = append(errs, es...)
		case err != nil:
			errs = append(errs, &Error{Source: source, Message: err.Error()})
		default:
			docs = append(docs, d...)
		}
	}
	for _, p := range paths {
		if p == "-" {
			if stdin == nil {
				errs = append(errs, &Error{Source: StdinSource, Message: "no standard input to read"})
				continue
			}
			data, err := io.ReadAll(stdin)
			if err != nil {
				errs = append(errs, &Error{Source: StdinSource, Message: "failed to read: " + err.Error()})
				continue
			}
			add(data, StdinSource)
			continue
		}
		files, err := manifestFiles(p)
		if err != nil {
			errs = append(errs, &Error{Source: p, Message: err.Error()})
			continue
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, &Error{Source: f, Message: "failed to read: " + pathErrorText(err)})
				continue
			}
			add(data, f)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}

// manifestFiles lists the files to read for one path: the path itself if it
// is a file, or the manifest files of a directory, sorted by name.
func manifestFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, errors.New(pathErrorText(err))
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, errors.New("failed to read directory: " + pathErrorText(err))
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() || !isManifestName(e.Name()) {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			// A link to a directory is not a manifest; a link to a file is.
			if st, err := os.Stat(filepath.Join(path, e.Name())); err == nil && st.IsDir() {
				continue
			}
		}
		files = append(files, filepath.Join(path, e.Name()))
	}
	if len(files) == 0 {
		return nil, errors.New("no manifest files (*.yaml, *.yml, *.json) in directory")
	}
	slices.Sort(files)
	return files, nil
}

func isManifestName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return slices.Contains(manifestExts, ext) && !strings.HasPrefix(name, ".")
}

// pathErrorText drops the path from an *fs.PathError's text: the error
// already names the source.
func pathErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
