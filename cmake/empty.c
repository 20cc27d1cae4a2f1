/* Keeps a module library valid while it has no other sources (ISO C forbids an empty unit). */
typedef int cd_empty_unit;
