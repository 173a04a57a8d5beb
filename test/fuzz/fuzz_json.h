/*-------------------------------------------------------------------------
 *
 * fuzz_json.h
 *	  The check the fuzz targets share: a decoder's output is one JSON
 *	  value.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_FUZZ_JSON_H
#define LI_FUZZ_JSON_H

#include <stdlib.h>
#include <string.h>

#include "abi_core.h"

/* the output is one JSON value: brackets balance outside strings */
static inline void
check_json(const LiAbiBuf *b)
{
	size_t		i;
	int			depth = 0;
	int			in_str = 0;

	if (b->data[b->len] != '\0' || strlen(b->data) != b->len)
		abort();
	for (i = 0; i < b->len; i++)
	{
		char		c = b->data[i];

		if (in_str)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			else if ((unsigned char) c < 0x20)
				abort();
			continue;
		}
		if (c == '"')
			in_str = 1;
		else if (c == '[' || c == '{')
			depth++;
		else if (c == ']' || c == '}')
		{
			if (--depth < 0)
				abort();
		}
	}
	if (depth != 0 || in_str)
		abort();
}

#endif							/* LI_FUZZ_JSON_H */
