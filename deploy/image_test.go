package deploy

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/testutil"
)

// make image builds the image with a real builder (podman, offline: FROM
// scratch pulls nothing), into storage of the test's own. The binary in it
// is static and is the one built with the version given; the image runs
// `socklife serve` and holds that binary alone.
func TestMakeImageBuildsStaticImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds socklife and an image")
	}
	podman := testutil.NewPodman(t)
	version := fmt.Sprintf("imagetest-%d", os.Getpid())
	image := "localhost/socklife:" + version
	bin := filepath.Join(t.TempDir(), "bin", "socklife")
	mk := exec.Command("make", "-C", "..", "image",
		"BIN="+bin, "VERSION="+version, "IMAGE="+image,
		"PODMAN="+podman.Bin+" "+strings.Join(podman.Args, " "))
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}

	var config struct {
		Entrypoint   []string
		Cmd          []string
		Labels       map[string]string
		ExposedPorts map[string]any
	}
	if err := json.Unmarshal([]byte(podman.Run(t, "image", "inspect", "--format", "{{json .Config}}", image)), &config); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(config.Entrypoint, []string{"/socklife"}) || !slices.Equal(config.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q, want /socklife serve", config.Entrypoint, config.Cmd)
	}
	if config.Labels["org.opencontainers.image.version"] != version {
		t.Errorf("version label %q, want %q", config.Labels["org.opencontainers.image.version"], version)
	}
	if _, ok := config.ExposedPorts["9931/tcp"]; !ok {
		t.Errorf("exposed ports %v, want 9931/tcp", config.ExposedPorts)
	}
	// FROM scratch and one COPY: a single layer.
	if layers := strings.Fields(podman.Run(t, "image", "inspect", "--format", "{{range .RootFS.Layers}}{{.}} {{end}}", image)); len(layers) != 1 {
		t.Errorf("%d layers, want 1 (FROM scratch, COPY the binary)", len(layers))
	}

	// This machine's root cannot start containers (internal/runtimes'
	// tests say why): take the binary out of a created one and run it here.
	id := podman.Run(t, "create", image)
	got := filepath.Join(t.TempDir(), "socklife")
	podman.Run(t, "cp", id+":/socklife", got)
	podman.Run(t, "rm", id)
	f, err := elf.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary in the image is dynamically linked (%s): scratch has no libc", p.Type)
		}
	}
	out, err := exec.Command(got, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "socklife "+version+" ") {
		t.Errorf("socklife version: %v: %q, want socklife %s ...", err, out, version)
	}
}
