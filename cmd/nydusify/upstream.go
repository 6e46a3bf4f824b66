package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/gonydus/nydus/cmd/internal/cli"
)

// refusedOpt is an upstream option nydusify parses but does not
// implement: a value other than def is refused with reason.
type refusedOpt struct {
	names  []string
	def    string
	isBool bool
	reason string
}

// registerRefused registers opts on fs and returns the check to run after
// parsing.
func registerRefused(fs *flag.FlagSet, opts []refusedOpt) func() error {
	type reg struct {
		s      *string
		b      *bool
		def    string
		reason string
	}
	var regs []reg
	for _, o := range opts {
		usage := "Refused: " + o.reason
		if o.isBool {
			regs = append(regs, reg{b: cli.Bool(fs, usage, o.names...), reason: o.reason, def: "false"})
		} else {
			regs = append(regs, reg{s: cli.String(fs, o.def, usage, o.names...), reason: o.reason, def: o.def})
		}
	}
	return func() error {
		for _, r := range regs {
			v := ""
			if r.b != nil {
				v = fmt.Sprint(*r.b)
			} else {
				v = *r.s
			}
			if v != r.def {
				return usagef("%s (refused)", r.reason)
			}
		}
		return nil
	}
}

const (
	whyObjectStorage = "object storage backends (oss, s3) are not implemented: blobs are read from and pushed to the registry"
	whyArchive       = "OCI layout tar archives are not implemented: use registry references"
)

// convertRefused are upstream convert options without an implementation.
var convertRefused = []refusedOpt{
	{names: []string{"source-archive"}, reason: "--source-archive: " + whyArchive},
	{names: []string{"target-archive"}, reason: "--target-archive: " + whyArchive},
	{names: []string{"source-backend-type"}, reason: "--source-backend-type: " + whyObjectStorage},
	{names: []string{"source-backend-config"}, reason: "--source-backend-config: " + whyObjectStorage},
	{names: []string{"backend-type"}, reason: "--backend-type: " + whyObjectStorage},
	{names: []string{"backend-config"}, reason: "--backend-config: " + whyObjectStorage},
	{names: []string{"backend-config-file"}, reason: "--backend-config-file: " + whyObjectStorage},
	{names: []string{"backend-force-push"}, isBool: true, reason: "--backend-force-push: " + whyObjectStorage},
	{names: []string{"build-cache"}, reason: "--build-cache: build cache images are not implemented"},
	{names: []string{"build-cache-tag"}, reason: "--build-cache-tag: build cache images are not implemented"},
	{names: []string{"chunk-dict"}, reason: "--chunk-dict: chunk dictionaries are not implemented in nydusify convert (nydus-image create --chunk-dict is)"},
	{names: []string{"merge-platform", "multi-platform"}, isBool: true, reason: "--merge-platform: an index holding both the OCI and the Nydus manifests is not written"},
	{names: []string{"all-platforms"}, isBool: true, reason: "--all-platforms: one platform is converted per run; pass --platform"},
	{names: []string{"reverse"}, isBool: true, reason: "--reverse: Nydus to OCI conversion is not implemented"},
	{names: []string{"docker-v2-format"}, isBool: true, reason: "--docker-v2-format: Docker v2 media types are not written on request (the source's are kept; --oci converts to OCI)"},
	{names: []string{"batch-size"}, def: "0", reason: "--batch-size: batch chunks are not written; use 0"},
	{names: []string{"output-json"}, reason: "--output-json: conversion metrics are not written"},
}

// convertAccepted are upstream convert options that parse and change
// nothing here, with why.
var convertAccepted = []struct{ name, def, usage string }{
	{"build-cache-version", "v1", "Build cache version (accepted; build caches are refused)"},
	{"build-cache-max-records", "200", "Build cache records (accepted; build caches are refused)"},
	{"push-retry-count", "3", "Push retries (accepted; the registry client retries transient errors itself)"},
	{"push-retry-delay", "5s", "Delay between push retries (accepted; the registry client backs off itself)"},
}

// convertAcceptedBools are upstream boolean convert options with no effect.
var convertAcceptedBools = []struct{ name, usage string }{
	{"build-cache-insecure", "Build cache registry without TLS checks (accepted; build caches are refused)"},
	{"chunk-dict-insecure", "Chunk dict registry without TLS checks (accepted; chunk dicts are refused)"},
	{"fs-align-chunk", "Align chunks to 4K (accepted: RAFS v6 always aligns them)"},
	{"backend-aligned-chunk", "[Deprecated] Align chunks to 4K (accepted: RAFS v6 always aligns them)"},
}

// checkRefused are upstream check options without an implementation.
var checkRefused = []refusedOpt{
	{names: []string{"source-backend-type"}, reason: "--source-backend-type: " + whyObjectStorage},
	{names: []string{"source-backend-config"}, reason: "--source-backend-config: " + whyObjectStorage},
	{names: []string{"source-backend-config-file"}, reason: "--source-backend-config-file: " + whyObjectStorage},
	{names: []string{"target-backend-type"}, reason: "--target-backend-type: " + whyObjectStorage},
	{names: []string{"target-backend-config"}, reason: "--target-backend-config: " + whyObjectStorage},
	{names: []string{"target-backend-config-file"}, reason: "--target-backend-config-file: " + whyObjectStorage},
	{names: []string{"multi-platform"}, isBool: true, reason: "--multi-platform: images holding both OCI and Nydus manifests are not checked"},
}

// refusedCommands are upstream subcommands nydusify does not implement.
var refusedCommands = map[string]string{
	"mount":     "mounting an image from the registry is not implemented here; run nydusd with a registry backend configuration",
	"view":      "mounting an image from the registry is not implemented here; run nydusd with a registry backend configuration",
	"build":     "building from a directory is nydus-image create's job: nydus-image create --type dir-rafs",
	"pack":      "building from a directory is nydus-image create's job: nydus-image create --type dir-rafs",
	"copy":      "copying Nydus images between registries is not implemented",
	"optimize":  "rebuilding images ordered by prefetch files is not implemented",
	"commit":    "committing a running container's changes is not implemented",
	"chunkdict": "generating chunk dictionary images needs upstream's chunk database, which is not implemented",
}

// envVars are upstream's environment variables for options (urfave/cli
// EnvVars): an option not on the command line takes its variable.
var envVars = map[string]map[string]string{
	"convert": {
		"source": "SOURCE", "target": "TARGET", "target-suffix": "TARGET_SUFFIX",
		"source-insecure": "SOURCE_INSECURE", "target-insecure": "TARGET_INSECURE",
		"source-archive": "SOURCE_ARCHIVE", "target-archive": "TARGET_ARCHIVE",
		"backend-type": "BACKEND_TYPE", "backend-config": "BACKEND_CONFIG", "backend-config-file": "BACKEND_CONFIG_FILE",
		"backend-force-push": "BACKEND_FORCE_PUSH", "build-cache": "BUILD_CACHE", "build-cache-tag": "BUILD_CACHE_TAG",
		"build-cache-version": "BUILD_CACHE_VERSION", "build-cache-insecure": "BUILD_CACHE_INSECURE",
		"build-cache-max-records": "BUILD_CACHE_MAX_RECORDS", "chunk-dict": "CHUNK_DICT",
		"chunk-dict-insecure": "CHUNK_DICT_INSECURE", "merge-platform": "MERGE_PLATFORM", "oci-ref": "OCI_REF",
		"with-referrer": "WITH_REFERRER", "oci": "OCI", "reverse": "REVERSE", "fs-version": "FS_VERSION",
		"fs-align-chunk": "FS_ALIGN_CHUNK", "backend-aligned-chunk": "BACKEND_ALIGNED_CHUNK",
		"prefetch-dir": "PREFETCH_DIR", "prefetch-patterns": "PREFETCH_PATTERNS", "compressor": "COMPRESSOR",
		"fs-chunk-size": "FS_CHUNK_SIZE", "batch-size": "BATCH_SIZE", "work-dir": "WORK_DIR",
		"nydus-image": "NYDUS_IMAGE", "output-json": "OUTPUT_JSON", "plain-http": "PLAIN_HTTP",
		"push-retry-count": "PUSH_RETRY_COUNT", "push-retry-delay": "PUSH_RETRY_DELAY",
	},
	"check": {
		"source": "SOURCE", "target": "TARGET", "source-insecure": "SOURCE_INSECURE", "target-insecure": "TARGET_INSECURE",
		"multi-platform": "MULTI_PLATFORM", "work-dir": "WORK_DIR", "nydus-image": "NYDUS_IMAGE", "nydusd": "NYDUSD",
	},
}

// globalEnv are the environment variables of the global options.
var globalEnv = map[string]string{"debug": "DEBUG_LOG_LEVEL", "log-level": "LOG_LEVEL", "log-file": "LOG_FILE", "log-format": "LOG_FORMAT"}

// applyEnv sets each option of fs not given on the command line from its
// environment variable, when that is set.
func applyEnv(fs *flag.FlagSet, vars map[string]string, getenv func(string) string) error {
	given := map[flag.Value]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Value] = true })
	for name, env := range vars {
		f := fs.Lookup(name)
		v := getenv(env)
		if f == nil || v == "" || given[f.Value] {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return usagef("$%s: %v", env, err)
		}
	}
	return nil
}

// globalOpts are nydusify's global options, accepted before the
// subcommand (as upstream takes them) and after it.
type globalOpts struct {
	debug                        *bool
	logLevel, logFile, logFormat *string
}

func addGlobals(fs *flag.FlagSet) *globalOpts {
	return &globalOpts{
		debug:     cli.Bool(fs, "Enable debug log level, overwrites the 'log-level' option", "debug", "D"),
		logLevel:  cli.String(fs, "info", "Log level: panic, fatal, error, warn, info, debug, trace", "log-level", "l"),
		logFile:   cli.String(fs, "", "Write logs to a file", "log-file"),
		logFormat: cli.String(fs, "text", "Log record format: text or json", "log-format"),
	}
}

// splitGlobals separates the global options before the subcommand from
// the rest of the command line.
func splitGlobals(args []string) (globals, rest []string) {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch name {
		case "debug", "D":
			globals = append(globals, args[i])
			i++
			continue
		case "log-level", "l", "log-file", "log-format":
		default:
			return globals, args[i:]
		}
		globals = append(globals, args[i])
		i++
		if !hasValue && i < len(args) {
			globals = append(globals, args[i])
			i++
		}
	}
	return globals, args[i:]
}
