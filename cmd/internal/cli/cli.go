// Package cli parses GNU-style command lines the way upstream Nydus tools
// (Rust clap) accept them: long and short names, aliases, flags before,
// between or after positional arguments, "--" to end flags; and prints
// help in clap's "--long, -s" shape, which callers grep for features.
package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Command is one subcommand: its flags and what it runs.
type Command struct {
	Program string // the binary's name, for help
	Name    string
	Usage   string
	Flags   *flag.FlagSet
	Run     func(args []string) error
	// Hidden names options parsed but left out of the help (its text
	// is read by callers detecting features).
	Hidden []string
	// Log is the binary's log handler, set up before Run is called.
	Log *Log
}

// boolFlag is implemented by flag.Value types that take no argument.
type boolFlag interface{ IsBoolFlag() bool }

// Parse parses GNU-style arguments: flags may appear before,
// between or after positional arguments, "--" ends flag parsing. It
// returns the positionals.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // flag.Parse reports it
		}
		if b, ok := f.Value.(boolFlag); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

// PrintUsage writes a subcommand's help in the "--long, -s" style that
// nydus-snapshotter's feature detection greps for.
func PrintUsage(w io.Writer, c *Command) {
	fmt.Fprintf(w, "Usage: %s %s\n\nOptions:\n", c.Program, c.Usage)
	seen := map[flag.Value][]string{}
	var order []flag.Value
	c.Flags.VisitAll(func(f *flag.Flag) {
		if _, ok := seen[f.Value]; !ok {
			order = append(order, f.Value)
		}
		seen[f.Value] = append(seen[f.Value], f.Name)
	})
	hidden := map[string]bool{}
	for _, n := range c.Hidden {
		hidden[n] = true
	}
	for _, v := range order {
		names := seen[v]
		if slices.ContainsFunc(names, func(n string) bool { return hidden[n] }) {
			continue
		}
		var parts []string
		var usage, def string
		for _, n := range names {
			f := c.Flags.Lookup(n)
			if len(n) == 1 {
				parts = append(parts, "-"+n)
			} else {
				parts = append(parts, "--"+n)
			}
			if f.Usage != "" {
				usage = f.Usage
			}
			def = f.DefValue
		}
		line := "  " + strings.Join(parts, ", ")
		if def != "" && def != "false" {
			usage += fmt.Sprintf(" [default: %s]", def)
		}
		fmt.Fprintf(w, "%-36s %s\n", line, usage)
	}
}

// StringList is a repeatable or comma-separated string flag.
type StringList []string

func (s *StringList) String() string { return strings.Join(*s, ",") }
func (s *StringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// Register registers v under several names (long name, short name,
// aliases); only the first carries the usage text.
func Register(fs *flag.FlagSet, v flag.Value, usage string, names ...string) {
	for i, n := range names {
		u := usage
		if i > 0 {
			u = ""
		}
		fs.Var(v, n, u)
	}
}

type stringValue struct{ p *string }

func (s stringValue) String() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}
func (s stringValue) Set(v string) error { *s.p = v; return nil }

type boolValue struct{ p *bool }

func (b boolValue) String() string {
	if b.p != nil && *b.p {
		return "true"
	}
	return "false"
}
func (b boolValue) Set(v string) error {
	switch v {
	case "", "true", "1":
		*b.p = true
	case "false", "0":
		*b.p = false
	default:
		return fmt.Errorf("invalid boolean %q", v)
	}
	return nil
}
func (boolValue) IsBoolFlag() bool { return true }

// String registers a string option under names.
func String(fs *flag.FlagSet, def, usage string, names ...string) *string {
	p := new(string)
	*p = def
	Register(fs, stringValue{p}, usage, names...)
	return p
}

// Bool registers a boolean option under names.
func Bool(fs *flag.FlagSet, usage string, names ...string) *bool {
	p := new(bool)
	Register(fs, boolValue{p}, usage, names...)
	return p
}
