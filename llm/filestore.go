package llm

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileStore is a Store in one file, dir/replies.db: a B+tree database
// (bbolt) whose transactions are atomic and durable, so however many
// replies it holds the cache is one file, and a crash at any moment leaves
// either the value written or none. Writes are behind the Puts: a Put
// queues its value and returns, and one writer commits what has
// accumulated in one transaction as soon as the previous commit ends, so
// that no caller waits for a file sync and many replies share each one.
// A Get of this process finds a value from its Put on (before its
// commit too); Flush and Close wait for the commits and return the first
// write error, which is also logged when it happens. A crash loses the
// values not yet committed, which are then fetched again.
//
// Each value carries a CRC-32C of its bytes and is compressed with
// DEFLATE when that makes it smaller (long raw replies); a value whose
// checksum does not match (a disk that lost bits) is reported missing, so
// that the cache fetches it again: it is never returned.
//
// Only one process can open the file at a time (it is locked); another
// process waits up to the store's lock wait and then gets an error
// wrapping ErrStoreLocked. Within one process, stores opened on the same
// directory share one open database.
//
// Directories of earlier versions, which held one file per reply under
// two-character subdirectories, are neither read nor removed.
type FileStore struct {
	path   string
	db     *openDB
	closed atomic.Bool
	log    *slog.Logger
	bad    atomic.Int64
}

var _ Store = (*FileStore)(nil)

// ErrStoreLocked is returned (wrapped) by OpenFileStore when another
// process holds the cache file.
var ErrStoreLocked = errors.New("in use by another process")

// FileStoreOptions are the settings of OpenFileStore; the zero value is
// the default.
type FileStoreOptions struct {
	// LockWait is how long to wait for another process to release the
	// file before giving up with ErrStoreLocked; 0 means 1 s (enough for a
	// process that is closing it).
	LockWait time.Duration
	// Logger receives a warning for each value found corrupt and an
	// error for each failed write; nil means slog.Default().
	Logger *slog.Logger
	// MaxQueued is how many values may wait for their commit before a
	// Put waits for it; 0 means 8,192.
	MaxQueued int
	// CommitEvery is the least time between the starts of two commits,
	// unless half of MaxQueued values wait or a Flush or Close does: the
	// most a crash can lose. 0 means 200 ms.
	CommitEvery time.Duration

	// ReadOnly opens the file for reading only: nothing is created or
	// written (Put fails), other processes may read it at the same
	// time, and a missing file is an error wrapping fs.ErrNotExist.
	ReadOnly bool

	// maxSize, when positive, is the largest the file may grow (bbolt's
	// MaxSize), so that tests can make a write fail.
	maxSize int
}

// FileName is the name of the store's file in its directory.
const FileName = "replies.db"

// repliesBucket is the bbolt bucket of the replies; a later format would
// use another name, so that an older file is never misread.
var repliesBucket = []byte("replies/v1")

// openDB is one open database shared by the stores of a process.
type openDB struct {
	db   *bolt.DB
	refs int
	// fresh marks a database that held no replies when it was opened:
	// then a key this process has not put is not in it (the file is
	// locked to this process), and put tells which keys may be.
	fresh bool
	put   putFilter
	w     *writer
	// readOnly marks a database opened with FileStoreOptions.ReadOnly.
	readOnly bool
}

// putFilter is a Bloom filter of the keys put into a fresh database, so
// that a Get of a key never put (every lookup of a first run, before its
// call) is answered without a read transaction: those were a quarter of
// the cache's CPU in a 40,000-reply sample run. A key it may hold is
// looked up in the file as always, so a false positive costs a lookup,
// never an answer; with many more keys than it was sized for it says
// "may hold" for every key, and Gets are what they were without it.
type putFilter struct {
	seed maphash.Seed
	bits [putFilterBits / 64]atomic.Uint64
}

// putFilterBits is the filter's size: 2 MiB, a false positive rate under
// 1% up to 1.5 million keys.
const putFilterBits = 1 << 24

// putFilterHashes is the number of bits per key.
const putFilterHashes = 4

// probes calls f with each bit of key.
func (p *putFilter) probes(key []byte, f func(word int, mask uint64) bool) bool {
	h1 := maphash.Bytes(p.seed, key)
	h2 := h1>>33 | h1<<31 | 1
	for i := range uint64(putFilterHashes) {
		b := (h1 + i*h2) % putFilterBits
		if !f(int(b/64), 1<<(b%64)) {
			return false
		}
	}
	return true
}

// add records key.
func (p *putFilter) add(key []byte) {
	p.probes(key, func(w int, m uint64) bool {
		p.bits[w].Or(m)
		return true
	})
}

// mayHold reports whether key may have been added.
func (p *putFilter) mayHold(key []byte) bool {
	return p.probes(key, func(w int, m uint64) bool { return p.bits[w].Load()&m != 0 })
}

// openFiles holds the databases open in this process by absolute path: the
// file lock belongs to an open file, so a second bolt.Open of the same
// file in the same process would wait for the first to close.
var openFiles = struct {
	sync.Mutex
	m map[string]*openDB
}{m: map[string]*openDB{}}

// OpenFileStore opens, creating it if needed, the store in dir. Errors: an
// empty dir, a directory that cannot be created, a file held by another
// process (ErrStoreLocked), or a file that is not a valid database (for
// example one truncated by a crash of the disk): then the error names the
// file, and removing it starts a fresh cache. With o.ReadOnly nothing is
// created: a missing directory or file is an error wrapping
// fs.ErrNotExist, and a file this process has open read-only cannot be
// opened for writing too (ErrStoreLocked).
func OpenFileStore(dir string, o FileStoreOptions) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("cache dir: empty path")
	}
	if !o.ReadOnly {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	path := filepath.Join(abs, FileName)
	if o.LockWait <= 0 {
		o.LockWait = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}

	openFiles.Lock()
	defer openFiles.Unlock()
	if d, ok := openFiles.m[path]; ok {
		if d.readOnly && !o.ReadOnly {
			return nil, fmt.Errorf("cache file %s: %w (open read-only in this process)", path, ErrStoreLocked)
		}
		d.refs++
		return &FileStore{path: path, db: d, log: o.Logger}, nil
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("cache file %s: %w", path, err)
		}
	}
	if err := checkLength(path); err != nil {
		return nil, fmt.Errorf("cache file %s: %w (remove the file to start a fresh cache)", path, err)
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: o.LockWait, FreelistType: bolt.FreelistMapType, MaxSize: o.maxSize, ReadOnly: o.ReadOnly})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("cache file %s: %w (waited %s)", path, ErrStoreLocked, o.LockWait)
	case err != nil:
		return nil, fmt.Errorf("cache file %s: %w (remove the file to start a fresh cache)", path, err)
	}
	fresh := false
	open := db.Update
	if o.ReadOnly {
		open = db.View
	}
	if err := open(func(tx *bolt.Tx) error {
		b := tx.Bucket(repliesBucket)
		if b == nil && !o.ReadOnly {
			var err error
			if b, err = tx.CreateBucket(repliesBucket); err != nil {
				return err
			}
		}
		if b == nil {
			return fmt.Errorf("no bucket %s (not a reply cache)", repliesBucket)
		}
		k, _ := b.Cursor().First()
		fresh = k == nil
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("cache file %s: %w", path, err)
	}
	d := &openDB{db: db, refs: 1, fresh: fresh, readOnly: o.ReadOnly, w: newWriter(db, path, o.Logger, o.MaxQueued, o.CommitEvery)}
	d.put.seed = maphash.MakeSeed()
	openFiles.m[path] = d
	return &FileStore{path: path, db: d, log: o.Logger}, nil
}

// Path is the store's file.
func (s *FileStore) Path() string { return s.path }

// Corrupt is the number of values this store found with a wrong checksum
// (and reported missing).
func (s *FileStore) Corrupt() int64 { return s.bad.Load() }

// Flush waits until every value put before the call (by any store of the
// process on the file) is committed, and returns the first write error
// of the file, if any: a value of a failed write is not in the file.
func (s *FileStore) Flush() error {
	if s.closed.Load() {
		return errStoreClosed
	}
	return s.db.w.flush()
}

// Close commits the values put, releases the store, and returns the first
// write error of the file, if any; the file is closed (and its lock
// released) when the last store of the process on it is closed. Closing
// twice is a no-op.
func (s *FileStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	werr := s.db.w.flush()
	openFiles.Lock()
	defer openFiles.Unlock()
	s.db.refs--
	if s.db.refs > 0 {
		return werr
	}
	delete(openFiles.m, s.path)
	werr = s.db.w.close()
	if err := s.db.db.Close(); err != nil {
		return errors.Join(werr, fmt.Errorf("cache file %s: close: %w", s.path, err))
	}
	return werr
}

var errStoreClosed = errors.New("store closed")

// Len is the number of values stored, once those put are committed.
func (s *FileStore) Len() (int, error) {
	if s.closed.Load() {
		return 0, errStoreClosed
	}
	if err := s.db.w.flush(); err != nil {
		return 0, err
	}
	var n int
	err := s.db.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(repliesBucket).Stats().KeyN
		return nil
	})
	return n, err
}

// Get returns the value of key.
func (s *FileStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, errStoreClosed
	}
	k, err := binaryKey(key)
	if err != nil {
		return nil, false, err
	}
	if s.db.fresh && !s.db.put.mayHold(k) {
		return nil, false, nil
	}
	rec, queued := s.db.w.get(k)
	if queued {
		// Records are never changed once sealed, but the caller may
		// change the value it gets.
		rec = bytes.Clone(rec)
	} else {
		err = s.db.db.View(func(tx *bolt.Tx) error {
			// The value is only valid inside the transaction: copied out.
			rec = bytes.Clone(tx.Bucket(repliesBucket).Get(k))
			return nil
		})
		if err != nil {
			return nil, false, err
		}
	}
	if rec == nil {
		return nil, false, nil
	}
	v, err := openRecord(rec)
	if err != nil {
		s.bad.Add(1)
		s.log.Warn("cache value corrupt; fetching it again", "file", s.path, "key", key, "err", err)
		return nil, false, nil
	}
	return v, true, nil
}

// Put stores val under key: it queues the value for the writer and
// returns, waiting only while the writer holds MaxQueued values (or until
// ctx ends). Once a write of the file has failed, Put returns its error.
func (s *FileStore) Put(ctx context.Context, key string, val []byte) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	if s.db.readOnly {
		return fmt.Errorf("cache file %s: opened read-only", s.path)
	}
	k, err := binaryKey(key)
	if err != nil {
		return err
	}
	rec, err := sealRecord(val)
	if err != nil {
		return err
	}
	// Recorded before it is queued: a Get that starts once the Put has
	// returned passes the filter, and finds the key queued or, once
	// committed, in the file.
	if s.db.fresh {
		s.db.put.add(k)
	}
	return s.db.w.put(ctx, k, rec)
}

// binaryKey is the key's bytes: cache keys are hex (SHA-256 sums), stored
// as the 32 bytes they spell rather than 64 characters.
func binaryKey(key string) ([]byte, error) {
	if len(key) < 2 || len(key)%2 != 0 {
		return nil, fmt.Errorf("cache key %q: want an even number of hex digits", key)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fmt.Errorf("cache key %q: want lowercase hex digits", key)
		}
	}
	return hex.DecodeString(key)
}

// A record is a kind byte, the CRC-32C of the value (little endian), and
// the value, raw or DEFLATE-compressed.
const (
	recordRaw     = 1
	recordDeflate = 2
	recordHeader  = 5
	// compressAbove is the size from which compressing is tried: shorter
	// JSON replies (a value and a one-token raw text, about 60 bytes)
	// do not shrink.
	compressAbove = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

func sealRecord(val []byte) ([]byte, error) {
	head := make([]byte, recordHeader, recordHeader+len(val))
	head[0] = recordRaw
	binary.LittleEndian.PutUint32(head[1:], crc32.Checksum(val, castagnoli))
	if len(val) > compressAbove {
		var buf bytes.Buffer
		buf.Write(head)
		w := deflaters.Get().(*flate.Writer)
		w.Reset(&buf)
		_, werr := w.Write(val)
		cerr := w.Close()
		deflaters.Put(w)
		if err := errors.Join(werr, cerr); err != nil {
			return nil, fmt.Errorf("compress cache value: %w", err)
		}
		if buf.Len() < recordHeader+len(val) {
			rec := buf.Bytes()
			rec[0] = recordDeflate
			return rec, nil
		}
	}
	return append(head, val...), nil
}

func openRecord(rec []byte) ([]byte, error) {
	if len(rec) < recordHeader {
		return nil, fmt.Errorf("record of %d bytes: shorter than its header", len(rec))
	}
	sum, body := binary.LittleEndian.Uint32(rec[1:]), rec[recordHeader:]
	var v []byte
	switch rec[0] {
	case recordRaw:
		v = body
	case recordDeflate:
		r := flate.NewReader(bytes.NewReader(body))
		var err error
		v, err = io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
	default:
		return nil, fmt.Errorf("record kind %d: unknown", rec[0])
	}
	if got := crc32.Checksum(v, castagnoli); got != sum {
		return nil, fmt.Errorf("checksum %08x, want %08x", got, sum)
	}
	return v, nil
}

// checkLength refuses a database file shorter than its own header says:
// bbolt maps the file and would fault, or panic, on the first page past
// its end. The header is bbolt's meta page, twice (at offset 0 and at one
// page): magic, version, page size, flags, root bucket (page, sequence),
// free list page, high-water page, transaction id, and an FNV-64a checksum
// of those, native-endian, after a 16-byte page header; the valid copy
// with the higher transaction id is the current one. A file that does not
// exist, or whose header is invalid (which bbolt reports itself), passes.
func checkLength(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	const (
		at      = 16 // the page header
		sumAt   = at + 56
		metaEnd = sumAt + 8
		magic   = 0xED0CDAED
	)
	var best struct {
		ok         bool
		txid, need uint64
	}
	read := func(off int64) {
		var b [metaEnd]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return
		}
		le := binary.NativeEndian
		h := fnv.New64a()
		h.Write(b[at:sumAt])
		if le.Uint32(b[at:]) != magic || h.Sum64() != le.Uint64(b[sumAt:]) {
			return
		}
		pageSize, pages, txid := uint64(le.Uint32(b[at+8:])), le.Uint64(b[at+40:]), le.Uint64(b[at+48:])
		if !best.ok || txid > best.txid {
			best.ok, best.txid, best.need = true, txid, pages*pageSize
		}
	}
	read(0)
	var b [at + 12]byte
	if _, err := f.ReadAt(b[:], 0); err == nil {
		if ps := binary.NativeEndian.Uint32(b[at+8:]); ps >= 512 && ps <= 1<<20 {
			read(int64(ps))
		}
	}
	if best.ok && uint64(fi.Size()) < best.need {
		return fmt.Errorf("truncated: %d bytes, its header says %d", fi.Size(), best.need)
	}
	return nil
}
