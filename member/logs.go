package member

import (
	"errors"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// logPather is the optional capability of a runtime driver that writes
// container logs to files (the exec driver does; the sim driver has none).
type logPather interface {
	LogPath(uid, container string) (string, error)
}

// logService implements meridianv1.LogServiceServer for a member.
type logService struct {
	meridianv1.UnimplementedLogServiceServer
	m *Member
}

// followPoll is how often a followed log is checked for new output.
const followPoll = 200 * time.Millisecond

// Logs streams a container's log file.
func (s *logService) Logs(req *meridianv1.LogsRequest, stream meridianv1.LogService_LogsServer) error {
	ctx := stream.Context()
	ns := req.GetNamespace()
	if ns == "" {
		ns = "default"
	}
	if req.GetPod() == "" {
		return status.Error(codes.InvalidArgument, "pod: required")
	}
	if req.GetPrevious() {
		return status.Error(codes.Unimplemented, "previous: the exec runtime keeps one log per container across restarts, with a marker line at each restart; read the whole log instead")
	}
	obj, err := s.m.store.Get(ctx, resource.MustLookup("Pod"), ns, req.GetPod())
	if errors.Is(err, storage.ErrNotFound) {
		return status.Errorf(codes.NotFound, "pod %q not found in namespace %q", req.GetPod(), ns)
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "failed to read pod: %v", err)
	}
	pod := obj.(*meridianv1.Pod)
	container := req.GetContainer()
	if container == "" {
		if n := len(pod.GetSpec().GetContainers()); n != 1 {
			return status.Errorf(codes.InvalidArgument, "container: required, pod %q has %d containers", req.GetPod(), n)
		}
		container = pod.GetSpec().GetContainers()[0].GetName()
	}
	found := false
	for _, c := range append(pod.GetSpec().GetInitContainers(), pod.GetSpec().GetContainers()...) {
		found = found || c.GetName() == container
	}
	if !found {
		return status.Errorf(codes.NotFound, "container %q not found in pod %q", container, req.GetPod())
	}
	ag := s.m.agentFor(pod.GetSpec().GetNodeName())
	if ag == nil {
		return status.Errorf(codes.FailedPrecondition, "pod %q is not running on any node of this member yet", req.GetPod())
	}
	lp, ok := ag.Driver().(logPather)
	if !ok {
		return status.Errorf(codes.Unimplemented, "the %s runtime keeps no logs", ag.Driver().Name())
	}
	path, err := lp.LogPath(pod.GetMetadata().GetUid(), container)
	if err != nil {
		return status.Errorf(codes.Internal, "failed to find the log: %v", err)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if !req.GetFollow() {
			return nil // the container has written nothing yet
		}
		for f == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(followPoll):
			}
			f, _ = os.Open(path)
		}
	} else if err != nil {
		return status.Errorf(codes.Internal, "failed to open the log: %v", err)
	}
	defer f.Close()
	if n := req.GetTailLines(); n > 0 {
		if err := seekTail(f, int(n)); err != nil {
			return status.Errorf(codes.Internal, "failed to read the log: %v", err)
		}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := stream.Send(&meridianv1.LogsResponse{Data: append([]byte(nil), buf[:n]...)}); err != nil {
				return err
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return status.Errorf(codes.Internal, "failed to read the log: %v", err)
		}
		if !req.GetFollow() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	const chunk = 8 << 10
	lines := 0
	pos := size
	buf := make([]byte, chunk)
	for pos > 0 {
		step := int64(chunk)
		if pos < step {
			step = pos
		}
		pos -= step
		if _, err := f.ReadAt(buf[:step], pos); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		b := buf[:step]
		for i := len(b) - 1; i >= 0; i-- {
			// The log's final newline ends the last line; it does not start one.
			if b[i] == '\n' && pos+int64(i) != size-1 {
				lines++
				if lines == n {
					_, err := f.Seek(pos+int64(i)+1, io.SeekStart)
					return err
				}
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
