-- The balances not walked yet for day $1: after its paid_upto.
account_id > (SELECT COALESCE(paid_upto, '00000000-0000-0000-0000-000000000000')
                FROM popug.billing_day WHERE day = $1)
