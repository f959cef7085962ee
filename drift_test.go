package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docPackages are the module's packages with non-test Go files, by
// directory.
func docPackages(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "dist" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			if dir := filepath.Dir(path); !slices.Contains(out, dir) {
				out = append(out, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// README's Layout names every package of internal/ and the top-level ones
// (a new package is documented where users look), so the layout never
// drifts from the tree.
func TestReadmeLayoutNamesEveryPackage(t *testing.T) {
	t.Parallel()
	layout := readmeSection(t, "## Layout")
	for _, dir := range docPackages(t) {
		top, _, _ := strings.Cut(dir, "/")
		var want string
		switch {
		case dir == ".":
			continue
		case top == "test":
			want = "test/" // test packages are named in test/'s paragraph
			if name := strings.TrimPrefix(dir, "test/"); !strings.Contains(layout, strings.Split(name, "/")[0]) {
				t.Errorf("README's Layout does not name test package %s", dir)
			}
		case top == "internal":
			want = dir + "/"
			if !strings.Contains(layout, want) && !strings.Contains(layout, strings.TrimPrefix(dir, "internal/")) {
				t.Errorf("README's Layout does not name %s", dir)
			}
			continue
		default:
			want = dir + "/"
		}
		if !strings.Contains(layout, want) {
			t.Errorf("README's Layout does not name %s", want)
		}
	}
}

// Each package's doc.go lists its files in a paragraph that starts with
// "Files": every non-test file of the package is named there, so a reader
// finds what each file holds.
func TestPackageDocsNameEveryFile(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	for _, dir := range docPackages(t) {
		doc := filepath.Join(dir, "doc.go")
		if _, err := os.Stat(doc); err != nil {
			continue
		}
		f, err := parser.ParseFile(fset, doc, nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		text := f.Doc.Text()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		i := regexp.MustCompile(`(?m)^Files[.:]`).FindStringIndex(text)
		if i == nil {
			n := 0
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") && e.Name() != "doc.go" {
					n++
				}
			}
			if n > 1 {
				t.Errorf("%s: %d files and no paragraph starting with \"Files\" that names them", doc, n)
			}
			continue
		}
		files := text[i[0]:]
		if j := strings.Index(files, "\n\n"); j >= 0 {
			files = files[:j]
		}
		for _, e := range entries {
			n := e.Name()
			if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") || n == "doc.go" {
				continue
			}
			if !strings.Contains(files, n) {
				t.Errorf("%s: its Files paragraph does not name %s", doc, n)
			}
		}
	}
}
