package bus

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/society-sim/society/internal/proc"
)

// An embedded server without a StoreDir keeps JetStream's files in a
// temporary directory named tempStorePattern. The directory holds the
// owner's process id in ownerFile, so that a later start can tell the
// directories of processes that died without cleaning up (kill -9, a
// second interrupt, a crash) from those of processes still running.
const (
	tempStorePattern = "society-nats-*"
	ownerFile        = "owner.pid"
)

// liveStores are this process's temporary stores, for RemoveTempStores.
var liveStores = struct {
	sync.Mutex
	dirs map[string]bool
}{dirs: map[string]bool{}}

func newTempStore() (string, error) {
	dir, err := os.MkdirTemp("", tempStorePattern)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	liveStores.Lock()
	liveStores.dirs[dir] = true
	liveStores.Unlock()
	return dir, nil
}

func removeTempStore(dir string) {
	os.RemoveAll(dir)
	liveStores.Lock()
	delete(liveStores.dirs, dir)
	liveStores.Unlock()
}

// RemoveTempStores removes the temporary stores of this process's embedded
// servers. It is for a process about to exit without shutting its servers
// down (a second interrupt): their files are of no further use.
func RemoveTempStores() {
	liveStores.Lock()
	defer liveStores.Unlock()
	for dir := range liveStores.dirs {
		os.RemoveAll(dir)
		delete(liveStores.dirs, dir)
	}
}

// RemoveStaleStores removes the temporary stores left in the temporary
// directory by processes that no longer run. A store whose owner is alive,
// or whose owner cannot be told (no readable owner file), is kept.
func RemoveStaleStores() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempStorePattern))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() || proc.Alive(pid) {
			continue
		}
		os.RemoveAll(dir)
	}
}
