// Package docs holds the operator documentation of the gateway (markdown)
// and the tests that keep it honest: the configuration key table of
// user-manual.md is checked against the config package, and every
// aof2-admin and aof-gateway command shown in a fenced sh/console block of
// docs/*.md or README.md is run against the built binaries. It has no code
// of its own; `make docs` regenerates the generated parts.
package docs
