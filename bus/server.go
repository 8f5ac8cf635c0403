// Package bus owns everything that travels over NATS: the embedded
// nats-server with JetStream, the subjects of a run, the wire encoding of
// tasks and answer batches, the answer stream, the worker that hands task
// events to its shards of agents, and the consumer that feeds answers to the
// analysis. The run's work queue is sim's Dispatcher (Queue for a
// distributed run's orchestrator, Embedded for a single-process run).
//
// The three roles of a distributed run live here too: Orchestrator
// registers a run and drives sim's loop over the Queue, AgentHost serves
// the registered runs' tasks, and Analyst turns a run's answers into its
// results directory. What they need of the models they take through ports
// (HostModels, sim.Backends) that cmd/society wires to llm. Every role
// reaches the cluster the same way (Flags, Flags.Connect, Flags.Join) and
// shares the cluster's model reply bucket (OpenReplies), which the model
// cache takes as its shared tier.
//
// It is an adapter: it imports the domain packages (agent, questionnaires,
// values, analysis, results, sim) and never another adapter (llm,
// metrics).
package bus

import (
	"cmp"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerOptions configures the embedded NATS server.
type ServerOptions struct {
	// Listen makes the server accept TCP clients on Host:Port (Port 0 picks a
	// free port). Without it only in-process connections are possible, which
	// is what a single-process run needs and is the fastest path.
	Listen bool
	Host   string
	Port   int
	// StoreDir holds JetStream's files; empty means a fresh temporary
	// directory that Shutdown removes.
	StoreDir string
	// MaxMemory and MaxStore bound JetStream explicitly, so that a run can
	// never take the machine's memory by accident. Zero means 1 GiB and
	// 8 GiB.
	MaxMemory int64
	MaxStore  int64
	// MaxPayload is the largest message the server takes; zero means
	// 8 MiB. Publishers split answer batches to fit it (SplitBatch).
	MaxPayload int32
}

// writeDeadline is how long the embedded server waits for a client to read
// before it drops the connection.
const writeDeadline = 5 * time.Minute

// readyWait is how long the embedded server may take to start: a second
// when the machine is idle, far longer when it is starved.
const readyWait = time.Minute

// Server is an embedded nats-server with JetStream.
type Server struct {
	ns      *server.Server
	tempDir string
}

// StartServer starts an embedded nats-server and waits until it is ready.
func StartServer(o ServerOptions) (*Server, error) {
	s := &Server{}
	dir := o.StoreDir
	if dir == "" {
		RemoveStaleStores()
		d, err := newTempStore()
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		dir, s.tempDir = d, d
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = 1 << 30
	}
	if o.MaxStore == 0 {
		o.MaxStore = 8 << 30
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:         "society-embedded",
		Host:               host,
		Port:               port,
		DontListen:         !o.Listen,
		JetStream:          true,
		JetStreamMaxMemory: o.MaxMemory,
		JetStreamMaxStore:  o.MaxStore,
		StoreDir:           dir,
		NoLog:              true,
		NoSigs:             true,
		// Answer batches for large shards run to hundreds of kilobytes.
		MaxPayload: cmp.Or(o.MaxPayload, 8<<20),
		// A client that has not read what the server writes within the
		// write deadline is dropped as a slow consumer. The default 10s
		// dropped the run's own in-process connections when both cores
		// were busy (a busy machine, a million agents): a slow reader in
		// this process is never a dead one, and a dropped connection only
		// makes work to redo.
		WriteDeadline: writeDeadline,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(readyWait) {
		ns.Shutdown()
		s.cleanup()
		return nil, fmt.Errorf("embedded nats: not ready after %v", readyWait)
	}
	s.ns = ns
	return s, nil
}

// Connect opens a client connection to the embedded server (in-process when
// the server does not listen).
func (s *Server) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.InProcessServer(s.ns), nats.MaxReconnects(-1)}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and removes its temporary store.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tempDir != "" {
		removeTempStore(s.tempDir)
	}
}
