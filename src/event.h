/*-------------------------------------------------------------------------
 *
 * event.h
 *	  An event's fields as Datums of the SQL type ledger_ingest.event
 *	  (event.c), shared by the handlers (a whole event value) and the raw
 *	  sinks (one field per column).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_EVENT_H
#define LI_EVENT_H

#include "access/tupdesc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "ledger.h"

/* the attributes of ledger_ingest.event, in order */
typedef enum LiEventField
{
	LI_EVENT_PIPELINE,			/* text */
	LI_EVENT_LEDGER,			/* bigint */
	LI_EVENT_LEDGER_HASH,		/* bytea */
	LI_EVENT_LEDGER_TIME,		/* timestamptz, NULL if unknown */
	LI_EVENT_TX_INDEX,			/* integer */
	LI_EVENT_TX_HASH,			/* bytea, NULL if unknown */
	LI_EVENT_EVENT_INDEX,		/* integer */
	LI_EVENT_ADDRESS,			/* bytea */
	LI_EVENT_TOPICS,			/* bytea[] */
	LI_EVENT_DATA,				/* bytea */
	LI_EVENT_ARGS,				/* jsonb, NULL unless decoded */
	LI_EVENT_NATTS
} LiEventField;

/* the names of the attributes before args: the raw sink's column names */
extern const char *const li_event_field_names[LI_EVENT_ARGS];

/*
 * Field f (before LI_EVENT_ARGS) of event e of ledger l as a Datum of its
 * attribute's type, *isnull set.  pipeline is the pipeline's name as text
 * and ledger_hash l's hash as bytea, both built once by the caller.
 * Inline: the raw sink calls it per column of every row.
 */
static inline Datum
li_event_field(LiEventField f, Datum pipeline, Datum ledger_hash,
			   const LiLedger *l, const LiEvent *e, bool *isnull)
{
	*isnull = false;
	switch (f)
	{
		case LI_EVENT_PIPELINE:
			return pipeline;
		case LI_EVENT_LEDGER:
			return Int64GetDatum(l->number);
		case LI_EVENT_LEDGER_HASH:
			return ledger_hash;
		case LI_EVENT_LEDGER_TIME:
			*isnull = TIMESTAMP_NOT_FINITE(l->time);
			return TimestampTzGetDatum(l->time);
		case LI_EVENT_TX_INDEX:
			return Int32GetDatum(e->tx_index);
		case LI_EVENT_TX_HASH:
			*isnull = !e->has_tx_hash;
			return *isnull ? (Datum) 0 : PointerGetDatum(li_bytes_to_bytea(e->tx_hash, LI_HASH_LEN));
		case LI_EVENT_EVENT_INDEX:
			return Int32GetDatum(e->event_index);
		case LI_EVENT_ADDRESS:
			/* a Stellar system event may have no contract */
			*isnull = e->address_len == 0;
			return *isnull ? (Datum) 0 : PointerGetDatum(li_bytes_to_bytea(e->address, e->address_len));
		case LI_EVENT_TOPICS:
			return PointerGetDatum(li_topics_array(e));
		case LI_EVENT_DATA:
			return PointerGetDatum(e->data);
		default:
			break;
	}
	*isnull = true;
	return (Datum) 0;
}

/* the tuple descriptor of ledger_ingest.event (looked up once, inside a transaction) */
extern TupleDesc li_event_tupdesc(void);
/* the blessed descriptor of composite type ledger_ingest.<name>, in TopMemoryContext */
extern TupleDesc li_type_tupdesc(const char *name);
/* the ledger_ingest.event value of e, with args (NULL: none) */
extern Datum li_event_datum(Datum pipeline, Datum ledger_hash, const LiLedger *l,
							const LiEvent *e, Jsonb *args);
/* a copy of the event value ev with its args replaced */
extern Datum li_event_with_args(Datum ev, Jsonb *args);

#endif							/* LI_EVENT_H */
