-- Everything that defines extension popug in the current database, one
-- line per fact, without oids: objects, columns, constraints, indexes,
-- view and function definitions, function settings, comments, grants,
-- what pg_dump keeps, publications.  test/tap/10_upgrade.pl compares an
-- upgraded database with a fresh install through it.
\pset format unaligned
\pset tuples_only on
WITH ext AS (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'popug'),
members AS (
	SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
	 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
-- popug.event's partitions but event_default come and go with the events
-- (extension/retention.c), as rows do: they are data, not definitions.
rels AS (
	SELECT c.* FROM pg_catalog.pg_class c
	 WHERE c.relnamespace = 'popug'::regnamespace AND c.relname !~ '^event_[0-9]+(_|$)'),
facts AS (
	SELECT 'member ' || pg_catalog.pg_describe_object(classid, objid, 0) FROM members
	UNION ALL
	SELECT 'schema acl ' || COALESCE(nspacl::text, '') || ' owner-is-extension-owner ' || (nspowner = (SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'popug'))::text
	  FROM pg_catalog.pg_namespace WHERE nspname = 'popug'
	UNION ALL
	SELECT format('relation %s kind %s persistence %s options %s acl %s rls %s/%s', relname, relkind, relpersistence,
				  COALESCE(reloptions::text, ''), COALESCE(relacl::text, ''), relrowsecurity, relforcerowsecurity)
	  FROM rels
	UNION ALL
	SELECT format('column %s.%s %s notnull %s identity %s generated %s default %s collation %s acl %s', c.relname, a.attname,
				  pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated,
				  COALESCE(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), ''), COALESCE(co.collname, ''),
				  COALESCE(a.attacl::text, ''))
	  FROM rels c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	  LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
	UNION ALL
	SELECT format('constraint %s on %s: %s', con.conname, COALESCE(c.relname, t.typname::text),
				  pg_catalog.pg_get_constraintdef(con.oid))
	  FROM pg_catalog.pg_constraint con
	  LEFT JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
	  LEFT JOIN pg_catalog.pg_type t ON t.oid = con.contypid
	 WHERE con.connamespace = 'popug'::regnamespace AND (con.conrelid = 0 OR con.conrelid IN (SELECT oid FROM rels))
	UNION ALL
	SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
	  FROM pg_catalog.pg_index i JOIN rels c ON c.oid = i.indrelid
	UNION ALL
	SELECT format('view %s: %s', relname, pg_catalog.pg_get_viewdef(oid)) FROM rels WHERE relkind IN ('v', 'm')
	UNION ALL
	SELECT format('sequence %s %s %s %s %s %s %s', c.relname, s.seqtypid::regtype, s.seqstart, s.seqincrement,
				  s.seqmax, s.seqmin, s.seqcycle)
	  FROM pg_catalog.pg_sequence s JOIN rels c ON c.oid = s.seqrelid
	UNION ALL
	SELECT format('function %s acl %s: %s', p.oid::regprocedure, COALESCE(p.proacl::text, ''),
				  pg_catalog.pg_get_functiondef(p.oid))
	  FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'popug'::regnamespace AND p.prokind <> 'a'
	UNION ALL
	SELECT format('type %s kind %s acl %s labels %s', t.typname, t.typtype, COALESCE(t.typacl::text, ''),
				  (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_catalog.pg_enum WHERE enumtypid = t.oid))
	  FROM pg_catalog.pg_type t WHERE t.typnamespace = 'popug'::regnamespace
	   AND (t.typrelid = 0 OR t.typrelid IN (SELECT oid FROM rels))
	   AND (t.typelem = 0 OR t.typelem NOT IN (SELECT oid FROM pg_catalog.pg_type WHERE typrelid <> 0 AND typrelid NOT IN (SELECT oid FROM rels)))
	UNION ALL
	SELECT format('trigger %s', pg_catalog.pg_get_triggerdef(tg.oid))
	  FROM pg_catalog.pg_trigger tg JOIN rels c ON c.oid = tg.tgrelid WHERE NOT tg.tgisinternal
	UNION ALL
	SELECT format('policy %s on %s: %s %s %s using %s check %s', pol.polname, c.relname, pol.polcmd, pol.polpermissive,
				  pol.polroles::regrole[]::text, COALESCE(pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), ''),
				  COALESCE(pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid), ''))
	  FROM pg_catalog.pg_policy pol JOIN rels c ON c.oid = pol.polrelid
	UNION ALL
	SELECT format('rule %s', pg_catalog.pg_get_ruledef(r.oid))
	  FROM pg_catalog.pg_rewrite r JOIN rels c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN'
	UNION ALL
	SELECT format('comment %s: %s', pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
	  FROM pg_catalog.pg_description d
	 WHERE pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid) ~ '(^| )popug(\.|$)'
	UNION ALL
	SELECT format('dumped %s where %s', x.cfg::regclass, x.cond)
	  FROM pg_catalog.pg_extension e, LATERAL ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) x(cfg, cond)
	 WHERE e.extname = 'popug'
	UNION ALL
	SELECT format('publication %s ins %s upd %s del %s trunc %s viaroot %s tables %s', p.pubname, p.pubinsert, p.pubupdate,
				  p.pubdelete, p.pubtruncate, p.pubviaroot,
				  (SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1)
					 FROM pg_catalog.pg_publication_tables pt WHERE pt.pubname = p.pubname))
	  FROM pg_catalog.pg_publication p
)
SELECT f FROM facts AS t(f) ORDER BY 1;
