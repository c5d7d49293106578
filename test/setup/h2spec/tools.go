//go:build tools

// Package tools only names the command this module builds, so `go mod tidy` keeps its dependencies pinned.
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
