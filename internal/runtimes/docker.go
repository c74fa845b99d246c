package runtimes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// dockerClient speaks the Docker Engine API (HTTP over a unix socket), as
// dockerd serves it and `podman system service` does too. Plain net/http:
// the few fields read here do not justify the Docker SDK's dependencies.
type dockerClient struct {
	http *http.Client
	tr   *http.Transport
}

func dialDocker(path string) *dockerClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 1,
	}
	return &dockerClient{http: &http.Client{Transport: tr}, tr: tr}
}

func (c *dockerClient) close() error {
	c.tr.CloseIdleConnections()
	return nil
}

// get decodes the JSON answer to GET path into v; a 404 is errNotFound.
// The host part of the URL is a placeholder: the dialer ignores it.
func (c *dockerClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("Docker API GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // keep the connection for the next call
		return errNotFound
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("Docker API GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("Docker API GET %s: decoding: %w", path, err)
	}
	return nil
}

func (c *dockerClient) names(ctx context.Context, id string) (Names, error) {
	var inspect struct {
		Name   string
		Config struct {
			Labels map[string]string
		}
	}
	if err := c.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &inspect); err != nil {
		return Names{}, err
	}
	return fromLabels(inspect.Name, inspect.Config.Labels), nil
}

// version pings first: /_ping is the endpoint every Engine API server
// answers, so it tells the protocol apart from a CRI socket.
func (c *dockerClient) version(ctx context.Context) (name, version string, err error) {
	if err := c.get(ctx, "/_ping", nil); err != nil {
		return "", "", err
	}
	var v struct {
		Version    string
		Components []struct{ Name, Version string }
	}
	if err := c.get(ctx, "/version", &v); err != nil {
		return "", "", err
	}
	// dockerd's first component is "Engine", Podman's "Podman Engine"
	name = "Docker Engine API"
	if len(v.Components) > 0 && v.Components[0].Name != "" {
		name = v.Components[0].Name
	}
	return name, v.Version, nil
}
