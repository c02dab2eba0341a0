package hubsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// syncState is sync-state.json: the hub and the revision the member last
// applied and persisted. It is written only after the objects of a
// snapshot or changes batch are stored, so the hub never resumes past what
// the member holds.
type syncState struct {
	HubID    string `json:"hub_id"`
	Revision int64  `json:"revision"`
}

// readSyncState reads the sync state at path; the zero state if there is
// no file yet.
func readSyncState(path string) (syncState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return syncState{}, nil
	}
	if err != nil {
		return syncState{}, fmt.Errorf("failed to read the sync state: %w", err)
	}
	var st syncState
	if err := json.Unmarshal(data, &st); err != nil {
		return syncState{}, fmt.Errorf("failed to read the sync state %s: %w (remove it to resync from a snapshot)", path, err)
	}
	if st.Revision < 0 {
		return syncState{}, fmt.Errorf("failed to read the sync state %s: negative revision %d (remove it to resync from a snapshot)", path, st.Revision)
	}
	return st, nil
}

// writeSyncState persists st atomically.
func writeSyncState(dir string, st syncState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, StateFile, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("failed to persist the sync state: %w", err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data: a temporary file in dir,
// written and fsynced with mode perm, renamed over name, then the
// directory fsynced, so that after a crash the file is either the old one
// or the new one, never a part.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// certStored reports whether the member has joined: its certificate is
// stored (it is written last, after the key and the CA).
func certStored(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, CertFile))
	return err == nil
}
