// A minimal ADS server on go-control-plane, the reference the fan-out benchmark measures inferplane against
// (bench/run.ts --vs go-control-plane). It serves exactly the resources inferplane serves: the benchmark hands
// it inferplane's own encoded resources as JSON, and hands it each change the same way. One snapshot for every
// node (SnapshotCache in ADS mode), SotW and Delta. Test tooling only: nothing of it ships.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The message types the resources carry, registered for unmarshalling (typed_config included).
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// allNodes serves one snapshot to every node.
type allNodes struct{}

func (allNodes) ID(*core.Node) string { return "all" }

// encoded is one resource as the benchmark sends it: its type URL and protobuf bytes.
type encoded struct {
	TypeURL string `json:"typeUrl"`
	Bytes   string `json:"bytes"`
}

// snapshotRequest carries a version per type, as inferplane's content hashes: a type whose version stays the
// same is not sent again (one version for the whole snapshot would resend every type on every change).
type snapshotRequest struct {
	Versions  map[string]string `json:"versions"`
	Resources []encoded         `json:"resources"`
}

func buildSnapshot(body []byte) (*cache.Snapshot, error) {
	var req snapshotRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("snapshot JSON: %w", err)
	}
	byType := map[resource.Type][]types.Resource{}
	for i, r := range req.Resources {
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(r.TypeURL)
		if err != nil {
			return nil, fmt.Errorf("resource %d: %w", i, err)
		}
		raw, err := base64.StdEncoding.DecodeString(r.Bytes)
		if err != nil {
			return nil, fmt.Errorf("resource %d: %w", i, err)
		}
		m := mt.New().Interface()
		if err := proto.Unmarshal(raw, m); err != nil {
			return nil, fmt.Errorf("resource %d (%s): %w", i, r.TypeURL, err)
		}
		byType[r.TypeURL] = append(byType[r.TypeURL], m.(types.Resource))
	}
	snap := &cache.Snapshot{}
	for typeURL, version := range req.Versions {
		index := cache.GetResponseType(typeURL)
		if index == types.UnknownType {
			return nil, fmt.Errorf("unknown resource type %s", typeURL)
		}
		snap.Resources[index] = cache.NewResources(version, byType[typeURL])
	}
	return snap, nil
}

func main() {
	addr := flag.String("xds", "127.0.0.1:0", "xDS gRPC address")
	trigger := flag.String("trigger", "127.0.0.1:0", "HTTP address of the trigger endpoint (POST /snapshot)")
	flag.Parse()
	ctx := context.Background()
	snapshots := cache.NewSnapshotCache(true, allNodes{}, nil)
	srv := server.NewServer(ctx, snapshots, nil)
	// The options of go-control-plane's own example server.
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: true}),
	)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/snapshot", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			var snap *cache.Snapshot
			if snap, err = buildSnapshot(body); err == nil {
				err = snapshots.SetSnapshot(ctx, "all", snap)
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hl, err := net.Listen("tcp", *trigger)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(hl, nil)) }()
	// One JSON line on stdout says where it listens, as inferplane's log does.
	json.NewEncoder(os.Stdout).Encode(map[string]string{"msg": "go-control-plane peer serving", "xds": lis.Addr().String(), "trigger": hl.Addr().String()})
	log.Fatal(g.Serve(lis))
}
