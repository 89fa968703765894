package store

import "database/sql"

// DBOf hands the store's tests (package store_test) the database handle
// for assertions the Store's API does not answer: pragmas, row counts,
// a dump of every table. Product code has no such door.
func DBOf(s *Store) *sql.DB { return s.db }
