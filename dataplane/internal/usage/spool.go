package usage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"google.golang.org/protobuf/proto"
)

// errSpoolFull means a batch did not fit under the spool's byte cap.
var errSpoolFull = errors.New("usage spool full")

const spoolExt = ".batch"

// spool keeps unpublished batches on disk, one protobuf file per batch named
// <20-digit sequence>-<batch id>.batch, so name order is arrival order. Files are written
// to a temporary name, synced and renamed, so a crash leaves whole batches or nothing.
type spool struct {
	dir      string
	maxBytes int64
	files    []spoolFile
	bytes    int64
	seq      int64
}

type spoolFile struct {
	name string
	size int64
}

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, ".tmp") {
			// A write interrupted by a crash: the batch was never acknowledged as spooled.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if !strings.HasSuffix(name, spoolExt) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
		s.files = append(s.files, spoolFile{name: name, size: info.Size()})
		s.bytes += info.Size()
		if seq, ok := spoolSeq(name); ok {
			s.seq = max(s.seq, seq)
		}
	}
	slices.SortFunc(s.files, func(a, b spoolFile) int { return strings.Compare(a.name, b.name) })
	return s, nil
}

func spoolSeq(name string) (int64, bool) {
	prefix, _, ok := strings.Cut(name, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(prefix, 10, 64)
	return n, err == nil
}

// put writes an encoded batch as the newest file.
func (s *spool) put(batchID string, data []byte) error {
	if s.bytes+int64(len(data)) > s.maxBytes {
		return errSpoolFull
	}
	s.seq = max(s.seq+1, time.Now().UnixNano())
	name := fmt.Sprintf("%020d-%s%s", s.seq, batchID, spoolExt)
	if err := writeFileSync(filepath.Join(s.dir, name), data); err != nil {
		return fmt.Errorf("spool batch: %w", err)
	}
	s.files = append(s.files, spoolFile{name: name, size: int64(len(data))})
	s.bytes += int64(len(data))
	return nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// head reads the oldest batch.
func (s *spool) head() (*gatehousev1.UsageBatch, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, s.files[0].name))
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	var b gatehousev1.UsageBatch
	if err := proto.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	if b.BatchId == "" || b.OrgId == "" {
		return nil, errors.New("read spool: batch without id or org")
	}
	return &b, nil
}

// pop removes the oldest batch.
func (s *spool) pop() error {
	f := s.files[0]
	if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pop spool: %w", err)
	}
	s.files = s.files[1:]
	s.bytes -= f.size
	return nil
}
