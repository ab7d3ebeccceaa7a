/** dsync, the command-line client: one file per command group, registered in the order help lists them. */
import { program } from "./common.ts";
import "./node-commands.ts";
import "./kv-commands.ts";
import "./lock-commands.ts";
import "./queue-commands.ts";
import "./cache-commands.ts";
import "./admin-commands.ts";
import "./shard-commands.ts";

await program.parseAsync(process.argv);
