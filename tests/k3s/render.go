// Renders a k3s/RKE2 containerd config.toml.tmpl the way k3s does: the file
// is the top-level Go text/template, "base" is k3s's built-in template, and
// dot carries k3s's values. The base here is a stand-in holding what k3s's
// base writes for runc (runtime_type, SystemdCgroup = {{ .SystemdCgroup }}).
//
// Usage: render TEMPLATE SYSTEMD_CGROUP(true|false) BASE  (rendered TOML on stdout)
package main

import (
	"os"
	"text/template"
)

type containerdConfig struct {
	SystemdCgroup bool
}

func main() {
	user, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	base, err := os.ReadFile(os.Args[3])
	if err != nil {
		panic(err)
	}
	t := template.Must(template.New("compiled_template").Parse(string(user)))
	template.Must(t.New("base").Parse(string(base)))
	if err := t.Execute(os.Stdout, containerdConfig{SystemdCgroup: os.Args[2] == "true"}); err != nil {
		panic(err)
	}
}
