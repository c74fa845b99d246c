// Package deploy holds no code: it is where socklife's fleet deployment
// lives (Dockerfile, Kubernetes manifests, kustomization, Prometheus alert
// rules, Grafana dashboard), and its tests check those files against real
// tools and types:
//
//   - every manifest decodes strictly into k8s.io/api types (or, for the
//     Prometheus Operator's CRDs, into the fields socklife relies on), and
//     the DaemonSet holds exactly the documented privileges;
//   - promtool checks the rules and runs their unit tests, and each guard of
//     each alert is shown to matter;
//   - every PromQL expression of the rules and the dashboard names only
//     metrics and labels of the metric catalog, and parses;
//   - `make image` builds the image with podman and the binary in it is
//     static and reports the version it was built with.
package deploy
