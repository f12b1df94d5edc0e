# Turns extension/queries/*.sql into a C header of string constants, one
# per file: NAME.sql becomes POPUG_SQL_NAME.  Lines that begin with "--" are
# left out; a reference :NAME to another file is replaced by that file's
# text, as psql replaces a variable of that name set to it.
#
#   awk -f embed.awk extension/queries/*.sql > queries.h

# The text of file name with its references expanded.
function expand(name,    s, out, ref, pre, end)
{
	s = text[name]
	out = ""
	while (match(s, /:[a-z_][a-z0-9_]*/))
	{
		ref = substr(s, RSTART + 1, RLENGTH - 1)
		pre = substr(s, 1, RSTART - 1)
		end = RSTART + RLENGTH
		if ((ref in text) && substr(pre, length(pre), 1) != ":")
			out = out pre expand(ref)
		else
			out = out substr(s, 1, end - 1)
		s = substr(s, end)
	}
	return out s
}

FNR == 1 {
	name = FILENAME
	sub(/^.*\//, "", name)
	sub(/\.sql$/, "", name)
	names[++n] = name
	text[name] = ""
}

/^--/ { next }

{
	text[name] = text[name] (text[name] == "" ? "" : "\n") $0
}

END {
	print "/* Generated from extension/queries by embed.awk: do not edit. */"
	for (i = 1; i <= n; i++)
	{
		lines = split(expand(names[i]), line, "\n")
		printf "\n#define POPUG_SQL_%s \\\n", toupper(names[i])
		for (j = 1; j <= lines; j++)
		{
			gsub(/\\/, "&&", line[j])
			gsub(/"/, "\\\"", line[j])
			printf "\t\"%s%s\"%s\n", line[j], j < lines ? "\\n" : "", j < lines ? " \\" : ""
		}
	}
}
