// Package migrationfiles loads the versioned schema migrations the stores
// embed: files migrations/NNNN_name.sql, numbered 1..n without gaps. Each
// store applies them its own way; only the reading and the numbering rule
// are shared, so that both stores refuse the same mistakes.
package migrationfiles

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one migration file.
type Migration struct {
	Version int    // NNNN
	Name    string // the file's base name
	SQL     string // the file's content
}

// Load reads migrations/*.sql from fsys in order and checks that they are
// numbered 1..n.
func Load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for i, name := range names { // fs.Glob returns names sorted
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", name, i+1)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(body)})
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return ms, nil
}
