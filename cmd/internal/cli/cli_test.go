package cli

import (
	"flag"
	"strings"
	"testing"
)

func TestParseInterspersedAndAliases(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	b := String(fs, "", "bootstrap", "bootstrap", "B")
	v := Bool(fs, "verbose", "verbose", "v")
	var l StringList
	Register(fs, &l, "list", "list")
	pos, err := Parse(fs, []string{"src1", "-B", "boot", "--verbose", "src2", "--list", "a,b", "--list=c", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if *b != "boot" || !*v || strings.Join(l, ",") != "a,b,c" || strings.Join(pos, " ") != "src1 src2 --not-a-flag" {
		t.Fatalf("bootstrap %q verbose %v list %v pos %v", *b, *v, l, pos)
	}
	if _, err := Parse(fs, []string{"--unknown"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	var out strings.Builder
	PrintUsage(&out, &Command{Program: "prog", Name: "x", Usage: "x [OPTIONS]", Flags: fs})
	if !strings.Contains(out.String(), "Usage: prog x [OPTIONS]") ||
		!strings.Contains(out.String(), "-B, --bootstrap") || !strings.Contains(out.String(), "-v, --verbose") {
		t.Fatalf("usage:\n%s", out.String())
	}
	out.Reset()
	PrintUsage(&out, &Command{Program: "prog", Name: "x", Usage: "x [OPTIONS]", Flags: fs, Hidden: []string{"B"}})
	if strings.Contains(out.String(), "--bootstrap") || !strings.Contains(out.String(), "--verbose") {
		t.Fatalf("usage with -B hidden:\n%s", out.String())
	}
}
