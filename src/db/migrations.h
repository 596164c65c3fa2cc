/* migrations: the schema, compiled in from src/db/migrations/NNN_name.sql.
 *
 * Applied in version order at start-up by the pool (pool.c), in one
 * transaction under an advisory lock, and recorded in schema_migrations.
 * A migration, once released, is never edited: a change is a new file. */
#ifndef TODO_DB_MIGRATIONS_H
#define TODO_DB_MIGRATIONS_H

#include "db/db.h"

extern const db_migration_t db_migrations[];
extern const int db_n_migrations;

#endif
