package testutil_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestEveryPackageSaysWhatItOwns checks that every package of the
// repository has a doc comment: "Package x …" or, for commands, "Command x …".
func TestEveryPackageSaysWhatItOwns(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	checked := 0
	for _, top := range []string{"cmd", "internal"} {
		filepath.WalkDir(filepath.Join(root, top), func(dir string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() || d.Name() == "testdata" {
				if d != nil && d.IsDir() && d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return err
			}
			pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
				return !strings.HasSuffix(fi.Name(), "_test.go")
			}, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Errorf("%s: %v", dir, err)
				return nil
			}
			for name, pkg := range pkgs {
				checked++
				want := "Package " + name + " "
				if name == "main" {
					want = "Command " + filepath.Base(dir) + " "
				}
				documented := false
				for _, f := range pkg.Files {
					if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), want) {
						documented = true
					}
				}
				if !documented {
					rel, _ := filepath.Rel(root, dir)
					t.Errorf("%s: no doc comment starting %q", rel, want)
				}
			}
			return nil
		})
	}
	if checked < 20 {
		t.Fatalf("checked only %d packages", checked)
	}
}
