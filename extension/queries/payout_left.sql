-- Whether day $1 has balances left to walk.
SELECT EXISTS (SELECT FROM popug.balance WHERE :payout_unwalked)
