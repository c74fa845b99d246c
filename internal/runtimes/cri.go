package runtimes

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criClient speaks the kubelet's Container Runtime Interface (gRPC) to
// containerd's or CRI-O's socket.
type criClient struct {
	conn *grpc.ClientConn
	rt   cri.RuntimeServiceClient
}

// dialCRI makes a client for the socket at path. gRPC connects lazily:
// nothing touches the socket before the first call.
func dialCRI(path string) (*criClient, error) {
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI client for %s: %w", path, err)
	}
	return &criClient{conn: conn, rt: cri.NewRuntimeServiceClient(conn)}, nil
}

func (c *criClient) close() error { return c.conn.Close() }

// version answers for socklife info: the runtime's own name and version
// ("containerd", "1.6.20~ds1").
func (c *criClient) version(ctx context.Context) (name, version string, err error) {
	v, err := c.rt.Version(ctx, &cri.VersionRequest{})
	if err != nil {
		return "", "", fmt.Errorf("CRI Version: %w", err)
	}
	return v.RuntimeName, v.RuntimeVersion, nil
}

// names asks for a container first, then for a pod sandbox: a cgroup's id
// may be either, and a sandbox (the pause process) is named as its pod.
func (c *criClient) names(ctx context.Context, id string) (Names, error) {
	cs, err := c.rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id})
	if err == nil && cs.Status != nil {
		name := ""
		if cs.Status.Metadata != nil {
			name = cs.Status.Metadata.Name
		}
		return fromLabels(name, cs.Status.Labels), nil
	}
	if !criNotFound(err) {
		return Names{}, fmt.Errorf("CRI ContainerStatus %s: %w", id, err)
	}
	ps, err := c.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id})
	if err == nil && ps.Status != nil {
		n := fromLabels("", ps.Status.Labels)
		if m := ps.Status.Metadata; m != nil {
			// the sandbox's metadata is the pod's, labels or not
			n.PodName, n.PodNamespace, n.PodUID = m.Name, m.Namespace, m.Uid
		}
		n.Container = ""
		return n, nil
	}
	if criNotFound(err) {
		return Names{}, errNotFound
	}
	return Names{}, fmt.Errorf("CRI PodSandboxStatus %s: %w", id, err)
}

// criNotFound tells a runtime that answered "no such container" from one
// that did not answer (which marks the runtime down). An answer without
// an error and without a status says the same as NotFound.
func criNotFound(err error) bool {
	if err == nil {
		return true
	}
	return status.Code(err) == codes.NotFound
}
