// cnitool: the CNI client mactrunk's netns tests drive the plugin with, the way a
// runtime built on libcni does.
//
//	cnitool add|check|del <network> <netns-path>
//	cnitool gc|status     <network> [<netns-path>]
//
// The command line and environment are those of the CNI project's cnitool: NETCONFPATH
// (config directory, default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
// CNI_ARGS ("K=V;K=V"), CAP_ARGS (JSON object of capability arguments). Additions for the
// tests: CNI_CONTAINERID (default: "cnitool-" + the first 10 bytes of the SHA-512 of the
// netns path, in hex, as upstream), CNI_CACHE_DIR (libcni's cache, default /var/lib/cni)
// and, for gc, CNI_GC_VALID_ATTACHMENTS (a JSON list of {"containerID", "ifname"}; unset
// means no list, as upstream's gc sends).
//
// It is built against the libcni Debian 12 ships (1.1.2, offline; see build.sh). That
// libcni speaks CNI up to 1.0.0: it has no GC and no STATUS and cannot decode a 1.1.0
// result. So:
//   - a config list whose cniVersion libcni knows goes through libcni's own
//     AddNetworkList / CheckNetworkList / DelNetworkList (results decoded and converted by
//     libcni, cache written by libcni);
//   - any other version (1.1.0) goes through the same steps done here with libcni's
//     building blocks (config loading, InjectConf, invoke.RawExec), the result kept as
//     raw JSON and checked to be an object of the config's cniVersion that decodes as a
//     1.x result; the cache file has libcni's format;
//   - gc and status follow libcni 1.2 (GCNetworkList, GetStatusNetworkList): gc DELs
//     every cached attachment of the network that is not in the valid list, then, for
//     cniVersion >= 1.1.0, sends GC to each plugin with "cni.dev/valid-attachments" when a
//     list was given; status sends STATUS to each plugin for cniVersion >= 1.1.0.
//
// The cache entries also record the netns path (key "netns", as libcni 1.2 does) so that
// gc can DEL a stale attachment in its namespace.
//
// Output: add prints the result; every failure prints "cnitool: <error>" on stderr, plus
// "cnitool: CNI error code N" when a plugin returned a CNI error, and exits 1.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

// attachment is one entry of CNI_GC_VALID_ATTACHMENTS / cni.dev/valid-attachments.
type attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// cacheEntry is libcni's cache file (kind cniCacheV1) plus libcni 1.2's "netns".
type cacheEntry struct {
	Kind           string                 `json:"kind"`
	ContainerID    string                 `json:"containerId"`
	Config         []byte                 `json:"config"`
	IfName         string                 `json:"ifName"`
	NetworkName    string                 `json:"networkName"`
	NetNS          string                 `json:"netns,omitempty"`
	CniArgs        [][2]string            `json:"cniArgs,omitempty"`
	CapabilityArgs map[string]interface{} `json:"capabilityArgs,omitempty"`
	Result         map[string]interface{} `json:"result,omitempty"`
}

const cacheKind = "cniCacheV1"

// client holds what every operation needs.
type client struct {
	ctx      context.Context
	list     *libcni.NetworkConfigList
	path     []string
	cacheDir string
	lib      *libcni.CNIConfig
	exec     *invoke.RawExec
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	op, netName := os.Args[1], os.Args[2]
	switch op {
	case "add", "check", "del":
		if len(os.Args) != 4 {
			usage()
		}
	case "gc", "status":
		if len(os.Args) > 4 {
			usage()
		}
	default:
		usage()
	}

	confDir := envOr("NETCONFPATH", "/etc/cni/net.d")
	list, err := libcni.LoadConfList(confDir, netName)
	check(err)

	rt := &libcni.RuntimeConf{IfName: envOr("CNI_IFNAME", "eth0")}
	if v := os.Getenv("CAP_ARGS"); v != "" {
		check(json.Unmarshal([]byte(v), &rt.CapabilityArgs))
	}
	if v := os.Getenv("CNI_ARGS"); v != "" {
		rt.Args, err = parseCNIArgs(v)
		check(err)
	}
	if len(os.Args) == 4 {
		rt.NetNS, err = filepath.Abs(os.Args[3])
		check(err)
	}
	sum := sha512.Sum512([]byte(rt.NetNS))
	rt.ContainerID = envOr("CNI_CONTAINERID", "cnitool-"+hex.EncodeToString(sum[:10]))

	c := &client{
		ctx:      context.Background(),
		list:     list,
		path:     filepath.SplitList(os.Getenv("CNI_PATH")),
		cacheDir: envOr("CNI_CACHE_DIR", libcni.CacheDir),
		exec:     &invoke.RawExec{Stderr: os.Stderr},
	}
	c.lib = libcni.NewCNIConfigWithCacheDir(c.path, c.cacheDir, nil)

	switch op {
	case "add":
		out, err := c.add(rt)
		check(err)
		fmt.Println(string(out))
	case "check":
		check(c.check(rt))
	case "del":
		check(c.del(rt))
	case "gc":
		var valid *[]attachment
		if v, ok := os.LookupEnv("CNI_GC_VALID_ATTACHMENTS"); ok {
			var l []attachment
			if err := json.Unmarshal([]byte(v), &l); err != nil {
				check(fmt.Errorf("CNI_GC_VALID_ATTACHMENTS: %w", err))
			}
			valid = &l
		}
		check(c.gc(valid))
	case "status":
		check(c.status())
	}
}

// libcniSpeaks: whether Debian's libcni handles this cniVersion itself.
func libcniSpeaks(v string) bool {
	for _, s := range version.All.SupportedVersions() {
		if s == v {
			return true
		}
	}
	return false
}

func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

// ---------------------------------------------------------------- add / check / del

func (c *client) add(rt *libcni.RuntimeConf) ([]byte, error) {
	if libcniSpeaks(c.list.CNIVersion) {
		res, err := c.lib.AddNetworkList(c.ctx, c.list, rt)
		if err != nil {
			return nil, err
		}
		c.recordNetNS(rt)
		return json.MarshalIndent(res, "", "    ")
	}
	var prev json.RawMessage
	for _, p := range c.list.Plugins {
		out, err := c.run("ADD", p, prev, rt)
		if err == nil {
			err = checkResult(out, c.list.CNIVersion)
		}
		if err != nil {
			return nil, fmt.Errorf("plugin %s failed (add): %w", describe(p), err)
		}
		prev = out
	}
	if err := c.writeCache(rt, prev); err != nil {
		return nil, fmt.Errorf("failed to set network %q cached result: %w", c.list.Name, err)
	}
	var pretty interface{}
	if err := json.Unmarshal(prev, &pretty); err != nil {
		return nil, err
	}
	return json.MarshalIndent(pretty, "", "    ")
}

func (c *client) check(rt *libcni.RuntimeConf) error {
	if libcniSpeaks(c.list.CNIVersion) {
		return c.lib.CheckNetworkList(c.ctx, c.list, rt)
	}
	if c.list.DisableCheck {
		return nil
	}
	prev, err := c.cachedResult(rt)
	if err != nil {
		return err
	}
	if prev == nil {
		return fmt.Errorf("network %q: no cached result for %s/%s (CHECK needs the ADD's result)", c.list.Name, rt.ContainerID, rt.IfName)
	}
	for _, p := range c.list.Plugins {
		if _, err := c.run("CHECK", p, prev, rt); err != nil {
			return fmt.Errorf("plugin %s failed (check): %w", describe(p), err)
		}
	}
	return nil
}

func (c *client) del(rt *libcni.RuntimeConf) error {
	if libcniSpeaks(c.list.CNIVersion) {
		return c.lib.DelNetworkList(c.ctx, c.list, rt)
	}
	prev, err := c.cachedResult(rt)
	if err != nil {
		return err
	}
	for i := len(c.list.Plugins) - 1; i >= 0; i-- {
		p := c.list.Plugins[i]
		if _, err := c.run("DEL", p, prev, rt); err != nil {
			return fmt.Errorf("plugin %s failed (delete): %w", describe(p), err)
		}
	}
	_ = os.Remove(c.cacheFile(rt))
	return nil
}

// ---------------------------------------------------------------- gc / status (libcni 1.2)

func (c *client) gc(valid *[]attachment) error {
	if disabled(c.list, "disableGC") {
		return nil
	}
	keep := map[attachment]bool{}
	if valid != nil {
		for _, a := range *valid {
			keep[a] = true
		}
	}
	var errs []error
	for _, e := range c.cacheEntries() {
		if e.NetworkName != c.list.Name || keep[attachment{e.ContainerID, e.IfName}] {
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: e.ContainerID, NetNS: e.NetNS, IfName: e.IfName,
			Args: e.CniArgs, CapabilityArgs: e.CapabilityArgs}
		if err := c.del(rt); err != nil {
			errs = append(errs, fmt.Errorf("DEL of stale attachment %s/%s: %w", e.ContainerID, e.IfName, err))
		}
	}
	if atLeast(c.list.CNIVersion, "1.1.0") {
		extra := map[string]interface{}{}
		if valid != nil {
			extra["cni.dev/valid-attachments"] = *valid
		}
		for _, p := range c.list.Plugins {
			if err := c.runNoResult("GC", p, extra); err != nil {
				errs = append(errs, fmt.Errorf("plugin %s failed (gc): %w", describe(p), err))
			}
		}
	}
	return joinErrors(errs)
}

func (c *client) status() error {
	if !atLeast(c.list.CNIVersion, "1.1.0") {
		return nil
	}
	for _, p := range c.list.Plugins {
		if err := c.runNoResult("STATUS", p, nil); err != nil {
			return fmt.Errorf("plugin %s failed (status): %w", describe(p), err)
		}
	}
	return nil
}

// ---------------------------------------------------------------- running a plugin

// pluginConf: the plugin's config with name, cniVersion, prevResult (if any) and the
// runtimeConfig entries of the capabilities it declares, as libcni builds it.
func (c *client) pluginConf(p *libcni.NetworkConfig, prev json.RawMessage, rt *libcni.RuntimeConf) (*libcni.NetworkConfig, error) {
	inject := map[string]interface{}{"name": c.list.Name, "cniVersion": c.list.CNIVersion}
	if prev != nil {
		inject["prevResult"] = prev
	}
	rc := map[string]interface{}{}
	for capName, on := range p.Network.Capabilities {
		if v, ok := rt.CapabilityArgs[capName]; on && ok {
			rc[capName] = v
		}
	}
	if len(rc) > 0 {
		inject["runtimeConfig"] = rc
	}
	return libcni.InjectConf(p, inject)
}

func (c *client) run(cmd string, p *libcni.NetworkConfig, prev json.RawMessage, rt *libcni.RuntimeConf) ([]byte, error) {
	bin, err := invoke.FindInPath(p.Network.Type, c.path)
	if err != nil {
		return nil, err
	}
	if cmd == "ADD" {
		for _, err := range []*types.Error{utils.ValidateContainerID(rt.ContainerID),
			utils.ValidateNetworkName(c.list.Name), utils.ValidateInterfaceName(rt.IfName)} {
			if err != nil {
				return nil, err
			}
		}
	}
	conf, err := c.pluginConf(p, prev, rt)
	if err != nil {
		return nil, err
	}
	args := &invoke.Args{Command: cmd, ContainerID: rt.ContainerID, NetNS: rt.NetNS,
		PluginArgs: rt.Args, IfName: rt.IfName, Path: strings.Join(c.path, string(os.PathListSeparator))}
	return c.exec.ExecPlugin(c.ctx, bin, conf.Bytes, args.AsEnv())
}

// runNoResult: GC or STATUS (no container), extra keys added to the plugin's config.
func (c *client) runNoResult(cmd string, p *libcni.NetworkConfig, extra map[string]interface{}) error {
	bin, err := invoke.FindInPath(p.Network.Type, c.path)
	if err != nil {
		return err
	}
	inject := map[string]interface{}{"name": c.list.Name, "cniVersion": c.list.CNIVersion}
	for k, v := range extra {
		inject[k] = v
	}
	conf, err := libcni.InjectConf(p, inject)
	if err != nil {
		return err
	}
	args := &invoke.Args{Command: cmd, Path: strings.Join(c.path, string(os.PathListSeparator))}
	_, err = c.exec.ExecPlugin(c.ctx, bin, conf.Bytes, args.AsEnv())
	return err
}

// checkResult: one JSON object of the config's cniVersion that decodes as a 1.x result.
func checkResult(out []byte, want string) error {
	var head struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(out, &head); err != nil {
		return fmt.Errorf("result is not a JSON object: %w (%q)", err, out)
	}
	if head.CNIVersion != want {
		return fmt.Errorf("result has cniVersion %q, the config %q", head.CNIVersion, want)
	}
	var r types100.Result // 1.1.0 only adds to 1.0.0's result
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("result does not decode as a 1.x result: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------- the cache

func (c *client) cacheFile(rt *libcni.RuntimeConf) string {
	return filepath.Join(c.cacheDir, "results", c.list.Name+"-"+rt.ContainerID+"-"+rt.IfName)
}

// cachedResult: the result an earlier ADD cached, nil when there is none.
func (c *client) cachedResult(rt *libcni.RuntimeConf) (json.RawMessage, error) {
	b, err := ioutil.ReadFile(c.cacheFile(rt))
	if err != nil {
		return nil, nil // as libcni: no cache entry is no error
	}
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil || e.Kind != cacheKind {
		return nil, fmt.Errorf("network %q: unreadable cache entry %s", c.list.Name, c.cacheFile(rt))
	}
	if e.Result == nil {
		return nil, nil
	}
	return json.Marshal(e.Result)
}

func (c *client) writeCache(rt *libcni.RuntimeConf, result json.RawMessage) error {
	e := cacheEntry{Kind: cacheKind, ContainerID: rt.ContainerID, Config: c.list.Bytes, IfName: rt.IfName,
		NetworkName: c.list.Name, NetNS: rt.NetNS, CniArgs: rt.Args, CapabilityArgs: rt.CapabilityArgs}
	if err := json.Unmarshal(result, &e.Result); err != nil {
		return err
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	f := c.cacheFile(rt)
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return err
	}
	return ioutil.WriteFile(f, b, 0o600)
}

// recordNetNS adds "netns" to the entry libcni 1.1.2 wrote (it does not record it).
func (c *client) recordNetNS(rt *libcni.RuntimeConf) {
	f := c.cacheFile(rt)
	b, err := ioutil.ReadFile(f)
	if err != nil {
		return
	}
	var m map[string]interface{}
	if json.Unmarshal(b, &m) != nil {
		return
	}
	m["netns"] = rt.NetNS
	if b, err = json.Marshal(m); err == nil {
		_ = ioutil.WriteFile(f, b, 0o600)
	}
}

func (c *client) cacheEntries() []cacheEntry {
	dir := filepath.Join(c.cacheDir, "results")
	files, _ := ioutil.ReadDir(dir)
	var out []cacheEntry
	for _, f := range files {
		if !f.Mode().IsRegular() {
			continue
		}
		b, err := ioutil.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			continue
		}
		var e cacheEntry
		if json.Unmarshal(b, &e) == nil && e.Kind == cacheKind {
			out = append(out, e)
		}
	}
	return out
}

// ---------------------------------------------------------------- small things

func parseCNIArgs(s string) ([][2]string, error) {
	var out [][2]string
	for _, pair := range strings.Split(s, ";") {
		kv := strings.Split(pair, "=")
		if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
			return nil, fmt.Errorf("CNI_ARGS: bad pair %q (want K=V;K=V)", pair)
		}
		out = append(out, [2]string{kv[0], kv[1]})
	}
	return out, nil
}

func disabled(list *libcni.NetworkConfigList, key string) bool {
	var m map[string]interface{}
	_ = json.Unmarshal(list.Bytes, &m)
	b, _ := m[key].(bool)
	return b
}

func describe(p *libcni.NetworkConfig) string {
	if p.Network.Name != "" {
		return fmt.Sprintf("type=%q name=%q", p.Network.Type, p.Network.Name)
	}
	return fmt.Sprintf("type=%q", p.Network.Type)
}

func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return &multiError{msg: strings.Join(msgs, "; "), errs: errs}
}

// multiError keeps the first CNI error reachable for errors.As (go 1.19 has no errors.Join).
type multiError struct {
	msg  string
	errs []error
}

func (m *multiError) Error() string { return m.msg }

func (m *multiError) As(target interface{}) bool {
	for _, e := range m.errs {
		if errors.As(e, target) {
			return true
		}
	}
	return false
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func check(err error) {
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "cnitool: %v\n", err)
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		fmt.Fprintf(os.Stderr, "cnitool: CNI error code %d\n", cniErr.Code)
	}
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cnitool add|check|del <network> <netns-path>")
	fmt.Fprintln(os.Stderr, "       cnitool gc|status <network> [<netns-path>]")
	fmt.Fprintln(os.Stderr, "env: NETCONFPATH CNI_PATH CNI_IFNAME CNI_ARGS CAP_ARGS CNI_CONTAINERID CNI_CACHE_DIR CNI_GC_VALID_ATTACHMENTS")
	os.Exit(1)
}
