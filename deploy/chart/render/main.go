// Command chart-render renders a Helm chart the way `helm template` does, for machines
// without a helm binary: Go's text/template with sprig's functions and Helm's own
// (include, tpl, required, fail, toYaml, fromYaml, toJson, ...), values.yaml coalesced with
// values files and --set, .Release, .Chart, .Files and .Capabilities, partials (_*.tpl) and
// NOTES.txt not printed, empty documents dropped, the documents ordered by kind as Helm
// installs them and each headed by `# Source:`, and Chart.yaml's kubeVersion checked against
// --kube-version (v1.20.0, the tests' API server, by default). Fledge's tests use it to check
// deploy/chart/fledge; `cargo xtask chart` builds and runs it.
//
// It follows Helm 3's engine (pkg/engine, pkg/chartutil, pkg/strvals, pkg/releaseutil) for
// what a chart without dependencies uses. Not implemented: subcharts, hooks (refused),
// values.schema.json, .helmignore, `lookup` against a cluster (it answers an empty map, as
// `helm template` does) and `**` in .Files.Glob.
//
// Build (Debian: golang-go, golang-github-masterminds-sprig-dev, golang-k8s-sigs-yaml-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o chart-render main.go
//
// Usage:
//
//	chart-render --chart DIR [--name RELEASE] [--namespace NS] [--include-crds] [--notes]
//	             [-f values.yaml]... [--set k=v]... [--set-string k=v]...
//	             [--kube-version v1.20.0] [--api-versions group/version]...
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	semver "github.com/Masterminds/semver" // v3, at this path in Debian's GOPATH
	sprig "github.com/Masterminds/sprig"   // v3, at this path in Debian's GOPATH
	"sigs.k8s.io/yaml"
)

// Metadata is Chart.yaml, as Helm exposes it to templates as .Chart.
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
	IsRoot       bool              `json:"-"`
}

// Files are the chart's files outside templates/, as .Files.
type Files map[string][]byte

// GetBytes is a file's content, empty when there is no such file.
func (f Files) GetBytes(name string) []byte {
	if v, ok := f[name]; ok {
		return v
	}
	return []byte{}
}

// Get is a file's content as a string, empty when there is no such file.
func (f Files) Get(name string) string { return string(f.GetBytes(name)) }

// Glob is the files whose names match pattern (path.Match: `*` does not cross `/`).
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

// AsConfig is the files as a ConfigMap's data: base name to content, as YAML.
func (f Files) AsConfig() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}

// AsSecrets is the files as a Secret's data: base name to base64 content, as YAML.
func (f Files) AsSecrets() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	return toYAML(m)
}

// Lines is a file's lines, without the last newline.
func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has tells whether an API version (`policy/v1`) or resource (`policy/v1/PodDisruptionBudget`)
// is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string { return k.Version }

// GitVersion is the version, as Helm's deprecated field.
func (k KubeVersion) GitVersion() string { return k.Version }

// Capabilities is .Capabilities: what `helm template` assumes without a cluster.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// The API versions of a Kubernetes 1.20 API server (the one Fledge's tests start), plus
// those given with --api-versions.
var defaultAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1",
	"apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1", "apiregistration.k8s.io/v1",
	"apps/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1",
	"autoscaling/v2beta1", "autoscaling/v2beta2", "batch/v1", "batch/v1beta1",
	"certificates.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1beta1",
	"events.k8s.io/v1", "networking.k8s.io/v1", "node.k8s.io/v1beta1", "policy/v1beta1",
	"rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

type options struct {
	chart       string
	name        string
	namespace   string
	valueFiles  []string
	sets        []string
	setStrings  []string
	includeCRDs bool
	notes       bool
	kubeVersion string
	apiVersions []string
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err == nil {
		var out string
		out, err = run(opts)
		if err == nil {
			fmt.Print(out)
			return
		}
	}
	fmt.Fprintf(os.Stderr, "Error: %s\n", err)
	os.Exit(1)
}

func parseArgs(args []string) (options, error) {
	opts := options{name: "release-name", namespace: "default", kubeVersion: "v1.20.0"}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, inline := strings.Cut(arg, "=")
		takes := func() (string, error) {
			if inline {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", arg)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch name {
		case "--chart":
			v, err = takes()
			opts.chart = v
		case "--name":
			v, err = takes()
			opts.name = v
		case "--namespace", "-n":
			v, err = takes()
			opts.namespace = v
		case "--values", "-f":
			v, err = takes()
			opts.valueFiles = append(opts.valueFiles, v)
		case "--set":
			v, err = takes()
			opts.sets = append(opts.sets, v)
		case "--set-string":
			v, err = takes()
			opts.setStrings = append(opts.setStrings, v)
		case "--kube-version":
			v, err = takes()
			opts.kubeVersion = v
		case "--api-versions", "-a":
			v, err = takes()
			opts.apiVersions = append(opts.apiVersions, v)
		case "--include-crds":
			opts.includeCRDs = true
		case "--notes":
			opts.notes = true
		default:
			return opts, fmt.Errorf("unknown flag %q (see the usage at the top of main.go)", arg)
		}
		if err != nil {
			return opts, err
		}
	}
	if opts.chart == "" {
		return opts, errors.New("--chart DIR is required")
	}
	return opts, nil
}

// chart is a loaded chart directory.
type chart struct {
	meta      Metadata
	values    map[string]interface{}
	templates map[string]string // "templates/x.yaml" -> text
	files     Files             // everything else but Chart.yaml and values.yaml
	names     []string          // the files' names, in walk order
}

// loadChart reads a chart directory, following symbolic links (as Helm's loader does).
func loadChart(dir string) (*chart, error) {
	c := &chart{templates: map[string]string{}, files: Files{}}
	err := walk(dir, "", func(name string, data []byte) error {
		switch {
		case name == "Chart.yaml":
			if err := yaml.Unmarshal(data, &c.meta); err != nil {
				return fmt.Errorf("cannot load Chart.yaml: %w", err)
			}
		case name == "values.yaml":
			c.values = map[string]interface{}{}
			if err := yaml.Unmarshal(data, &c.values); err != nil {
				return fmt.Errorf("cannot load values.yaml: %w", err)
			}
		case name == "values.schema.json" || name == "Chart.lock" || strings.HasPrefix(name, "charts/"):
			return fmt.Errorf("%s: not supported by this renderer", name)
		case strings.HasPrefix(name, "templates/"):
			if !strings.HasPrefix(path.Base(name), ".") {
				c.templates[name] = string(data)
			}
		default:
			c.files[name] = data
			c.names = append(c.names, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.meta.Name == "" || c.meta.Version == "" {
		return nil, fmt.Errorf("%s/Chart.yaml needs a name and a version", dir)
	}
	if c.meta.APIVersion == "" {
		return nil, fmt.Errorf("%s/Chart.yaml: apiVersion is required", dir)
	}
	if c.values == nil {
		c.values = map[string]interface{}{}
	}
	c.meta.IsRoot = true
	return c, nil
}

func walk(root, rel string, visit func(string, []byte) error) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	for _, entry := range entries { // sorted by name
		name := path.Join(rel, entry.Name())
		full := filepath.Join(root, name)
		info, err := os.Stat(full) // follows links
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		if info.IsDir() {
			if err := walk(root, name, visit); err != nil {
				return err
			}
			continue
		}
		if !info.Mode().IsRegular() {
			return &fs.PathError{Op: "load", Path: full, Err: errors.New("not a regular file")}
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		if err := visit(name, data); err != nil {
			return err
		}
	}
	return nil
}

func run(opts options) (string, error) {
	c, err := loadChart(opts.chart)
	if err != nil {
		return "", err
	}
	if c.meta.KubeVersion != "" {
		constraint, err := semver.NewConstraint(c.meta.KubeVersion)
		if err != nil {
			return "", fmt.Errorf("Chart.yaml: kubeVersion %q: %w", c.meta.KubeVersion, err)
		}
		version, err := semver.NewVersion(opts.kubeVersion)
		if err != nil {
			return "", fmt.Errorf("--kube-version %q: %w", opts.kubeVersion, err)
		}
		if !constraint.Check(version) {
			return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c.meta.KubeVersion, opts.kubeVersion)
		}
	}
	user, err := userValues(opts)
	if err != nil {
		return "", err
	}
	values := coalesce(user, c.values)
	apiVersions := append(VersionSet{}, defaultAPIVersions...)
	apiVersions = append(apiVersions, opts.apiVersions...)
	major, minor := "", ""
	if parts := strings.SplitN(strings.TrimPrefix(opts.kubeVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	top := map[string]interface{}{
		"Chart": c.meta,
		"Capabilities": Capabilities{
			KubeVersion: KubeVersion{Version: opts.kubeVersion, Major: major, Minor: minor},
			APIVersions: apiVersions,
			HelmVersion: map[string]string{"Version": "v3 (chart-render)"},
		},
		"Release": map[string]interface{}{
			"Name":      opts.name,
			"Namespace": opts.namespace,
			"IsUpgrade": false,
			"IsInstall": true,
			"Revision":  1,
			"Service":   "Helm",
		},
		"Values":    values,
		"Files":     c.files,
		"Subcharts": map[string]interface{}{},
	}
	rendered, err := render(c, top)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	if opts.includeCRDs {
		for _, name := range c.names {
			if strings.HasPrefix(name, "crds/") && hasManifestExtension(name) {
				fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", path.Join(c.meta.Name, name), c.files[name])
			}
		}
	}
	notes := path.Join(c.meta.Name, "templates", "NOTES.txt")
	noteText := ""
	for name := range rendered {
		if strings.HasSuffix(name, "NOTES.txt") {
			if name == notes {
				noteText = rendered[name]
			}
			delete(rendered, name)
		}
	}
	manifests, err := sortManifests(rendered)
	if err != nil {
		return "", err
	}
	for _, m := range manifests {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	if opts.notes {
		fmt.Fprintf(os.Stderr, "NOTES:\n%s\n", strings.TrimSpace(noteText))
	}
	return out.String(), nil
}

func hasManifestExtension(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// userValues merges the values files (later wins) and then applies --set and --set-string,
// as Helm's values.Options.MergeValues.
func userValues(opts options) (map[string]interface{}, error) {
	base := map[string]interface{}{}
	for _, file := range opts.valueFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		current := map[string]interface{}{}
		if err := yaml.Unmarshal(data, &current); err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", file, err)
		}
		base = mergeMaps(base, current)
	}
	for _, set := range opts.sets {
		if err := parseSet(set, base, false); err != nil {
			return nil, fmt.Errorf("failed parsing --set data: %w", err)
		}
	}
	for _, set := range opts.setStrings {
		if err := parseSet(set, base, true); err != nil {
			return nil, fmt.Errorf("failed parsing --set-string data: %w", err)
		}
	}
	return base, nil
}

func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bm, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce lays the user's values over the chart's defaults as Helm's CoalesceValues: tables
// merge key by key, the user's scalar or list wins, and a user's null removes the default.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	dst := deepCopy(user).(map[string]interface{})
	coalesceTables(dst, deepCopy(defaults).(map[string]interface{}))
	return dst
}

func coalesceTables(dst, src map[string]interface{}) {
	for key, val := range src {
		dv, ok := dst[key]
		switch {
		case !ok:
			dst[key] = val
		case dv == nil:
			if val != nil {
				delete(dst, key) // the user removes a default
			}
		default:
			dm, dIsMap := dv.(map[string]interface{})
			sm, sIsMap := val.(map[string]interface{})
			if dIsMap && sIsMap {
				coalesceTables(dm, sm)
			} else if dIsMap != sIsMap && val != nil {
				fmt.Fprintf(os.Stderr, "warning: %s: the chart's default and the given value are not both tables; the given value is kept\n", key)
			}
		}
	}
}

func deepCopy(v interface{}) interface{} {
	switch v := v.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return v
	}
}

// parseSet applies one --set argument (`a.b=1,c[0]=x,d={e,f}`) to values, with Helm's
// typing: true/false, null, integers (not starting with 0) and otherwise strings;
// `\` escapes `,`, `.`, `=`, `[` and `{`.
func parseSet(text string, values map[string]interface{}, asString bool) error {
	for _, pair := range splitUnescaped(text, ',', true) {
		key, value, ok := cutUnescaped(pair, '=')
		if !ok {
			return fmt.Errorf("key %q has no value", pair)
		}
		var typed interface{}
		if strings.HasPrefix(value, "{") && strings.HasSuffix(value, "}") && !asString {
			list := []interface{}{}
			inner := value[1 : len(value)-1]
			if inner != "" {
				for _, item := range splitUnescaped(inner, ',', false) {
					list = append(list, typedVal(unescape(item), false))
				}
			}
			typed = list
		} else {
			typed = typedVal(unescape(value), asString)
		}
		if err := setPath(values, splitUnescaped(key, '.', false), typed); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// splitUnescaped splits at sep outside `\` escapes (and, with braces, outside `{...}`).
func splitUnescaped(text string, sep rune, braces bool) []string {
	var parts []string
	var cur strings.Builder
	depth := 0
	escaped := false
	for _, r := range text {
		switch {
		case escaped:
			cur.WriteRune('\\')
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case braces && r == '{':
			depth++
			cur.WriteRune(r)
		case braces && r == '}' && depth > 0:
			depth--
			cur.WriteRune(r)
		case r == sep && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, cur.String())
}

func cutUnescaped(text string, sep byte) (string, string, bool) {
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' {
			i++
			continue
		}
		if text[i] == sep {
			return text[:i], text[i+1:], true
		}
	}
	return text, "", false
}

func unescape(text string) string {
	var out strings.Builder
	escaped := false
	for _, r := range text {
		if !escaped && r == '\\' {
			escaped = true
			continue
		}
		escaped = false
		out.WriteRune(r)
	}
	return out.String()
}

var indexed = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

func setPath(values map[string]interface{}, keys []string, value interface{}) error {
	key := keys[0]
	if m := indexed.FindStringSubmatch(key); m != nil {
		index, _ := strconv.Atoi(m[2])
		name := unescape(m[1])
		list, _ := values[name].([]interface{})
		for len(list) <= index {
			list = append(list, nil)
		}
		if len(keys) == 1 {
			list[index] = value
		} else {
			child, ok := list[index].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
			}
			if err := setPath(child, keys[1:], value); err != nil {
				return err
			}
			list[index] = child
		}
		values[name] = list
		return nil
	}
	key = unescape(key)
	if key == "" {
		return errors.New("empty key")
	}
	if len(keys) == 1 {
		values[key] = value
		return nil
	}
	child, ok := values[key].(map[string]interface{})
	if !ok {
		child = map[string]interface{}{}
		values[key] = child
	}
	return setPath(child, keys[1:], value)
}

func typedVal(val string, asString bool) interface{} {
	if asString {
		return val
	}
	switch {
	case strings.EqualFold(val, "true"):
		return true
	case strings.EqualFold(val, "false"):
		return false
	case strings.EqualFold(val, "null"):
		return nil
	case val == "0":
		return int64(0)
	}
	if val != "" && val[0] != '0' {
		if i, err := strconv.ParseInt(val, 10, 64); err == nil {
			return i
		}
	}
	return val
}

// The template engine: one template set holding every file, as Helm's engine.render.

const warnStart, warnEnd = "HELM_ERR_START", "HELM_ERR_END"

var warnRegex = regexp.MustCompile(warnStart + `((?s).*)` + warnEnd)

func render(c *chart, top map[string]interface{}) (map[string]string, error) {
	t := template.New("gotpl").Option("missingkey=zero")
	included := map[string]int{}
	funcs := funcMap()
	funcs["include"] = includeFunc(t, included)
	funcs["tpl"] = tplFunc(t, included)
	t.Funcs(funcs)

	names := make([]string, 0, len(c.templates))
	for name := range c.templates {
		names = append(names, path.Join(c.meta.Name, name))
	}
	sort.Slice(names, func(i, j int) bool { // deeper paths first, then by name, descending
		a, b := names[i], names[j]
		if ca, cb := strings.Count(a, "/"), strings.Count(b, "/"); ca != cb {
			return ca > cb
		}
		return a > b
	})
	for _, name := range names {
		text := c.templates[strings.TrimPrefix(name, c.meta.Name+"/")]
		if _, err := t.New(name).Parse(text); err != nil {
			return nil, cleanupParseError(name, err)
		}
	}
	rendered := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{
			"Name": name, "BasePath": path.Join(c.meta.Name, "templates"),
		}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
			return nil, cleanupExecError(err)
		}
		rendered[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(warnStart + warn + warnEnd)
			}
			if s, ok := val.(string); ok && s == "" {
				return val, errors.New(warnStart + warn + warnEnd)
			}
			return val, nil
		},
		"fail": func(msg string) (string, error) {
			return "", errors.New(warnStart + msg + warnEnd)
		},
		"lookup": func(string, string, string, string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		"getHostByName": func(string) string { return "" },
		"include":       func(string, interface{}) string { return "not implemented" },
		"tpl":           func(string, interface{}) interface{} { return "not implemented" },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func includeFunc(t *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		if included[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
}

func tplFunc(parent *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{"include": includeFunc(t, included), "tpl": tplFunc(t, included)})
		t, err = t.New(parent.Name()).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

func cleanupParseError(name string, err error) error {
	tokens := strings.Split(err.Error(), ": ")
	if len(tokens) == 1 {
		return fmt.Errorf("parse error in (%s): %s", name, err)
	}
	return fmt.Errorf("parse error at (%s): %s", tokens[1], tokens[len(tokens)-1])
}

func cleanupExecError(err error) error {
	var exec template.ExecError
	if !errors.As(err, &exec) {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return err
	}
	if parts := warnRegex.FindStringSubmatch(tokens[2]); len(parts) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", tokens[1], parts[1])
	}
	return err
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(text string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(text string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(text), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(text string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(text string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// Manifests: each rendered file split into documents, ordered by kind as Helm installs.

var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

type manifest struct {
	source  string
	content string
	kind    string
}

var separator = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

func sortManifests(files map[string]string) ([]manifest, error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var out []manifest
	for _, p := range paths {
		content := files[p]
		if strings.HasPrefix(path.Base(p), "_") || strings.TrimSpace(content) == "" {
			continue
		}
		for _, doc := range separator.Split(strings.TrimSpace(content), -1) {
			if doc == "" {
				continue
			}
			doc = strings.TrimSpace(doc)
			var head struct {
				Kind     string `json:"kind"`
				Metadata *struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %w", p, err)
			}
			if head.Metadata != nil {
				if _, hook := head.Metadata.Annotations["helm.sh/hook"]; hook {
					return nil, fmt.Errorf("%s: hooks are not supported by this renderer", p)
				}
			}
			out = append(out, manifest{source: p, content: doc, kind: head.Kind})
		}
	}
	rank := map[string]int{}
	for i, kind := range installOrder {
		rank[kind] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, aKnown := rank[out[i].kind]
		b, bKnown := rank[out[j].kind]
		switch {
		case aKnown && bKnown:
			return a < b
		case aKnown != bKnown:
			return aKnown
		default:
			return out[i].kind < out[j].kind
		}
	})
	return out, nil
}
