-- Reserved for the permissions tables.
SELECT 1;
