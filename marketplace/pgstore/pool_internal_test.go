package pgstore

import "testing"

func TestSetsMaxConns(t *testing.T) {
	for _, c := range []struct {
		conn string
		want bool
	}{
		{"postgres://app@db:5432/app", false},
		{"postgres://app@db:5432/app?sslmode=disable&pool_max_conns=7", true},
		{"postgres://app:pool_max_conns@db/app?application_name=pool_max_conns", false},
		{"host=db user=app dbname=app", false},
		{"host=db user=app dbname=app pool_max_conns=9", true},
		{"host=db user=app password='pool_max_conns=9' dbname=app", false},
	} {
		if got := setsMaxConns(c.conn); got != c.want {
			t.Errorf("setsMaxConns(%q) = %v, want %v", c.conn, got, c.want)
		}
	}
}
