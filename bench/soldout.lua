-- wrk script for case (b): every request grabs the one sold-out coupon, the customers'
-- tokens in turn, so seckill answers 204 sold-out to all of them (nginx: its fixed 201).
--
-- It is bench/grab.lua with paths=FILE pointing at a file of one path (soldout.txt): pair
-- number g then maps to customer g % #tokens and always that coupon. Repeats are the point
-- here, so the "wrapped" count it reports means nothing for this case.
--
-- Arguments after wrk's `--`: tokens=FILE paths=SOLDOUT_FILE threads=N [mode=concat|count]
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "grab.lua")
