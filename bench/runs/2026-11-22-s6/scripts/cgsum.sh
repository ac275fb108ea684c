#!/bin/bash
# usage: cgsum.sh CGFILE REQUESTS: per-request inclusive instructions of the loop's main entry points
callgrind_annotate --inclusive=yes --threshold=100 $1 2>/dev/null | grep -E "PROGRAM TOTALS|ConnectionC7ioEvent|RouterC10HTTPServer11HTTPHandlerAadEP6handle|RouterC13exportSession|ServiceC6export_2as|ServiceC13storedSession|KeyringC4open|RouterC12authenticate|HTTPRequestParserV4next|ConnectionC7respond|SessionStringCodecO6encode_|RouterC12pathSegments|WriteCoordinatorC8runBatch" | sed 's/\[\/.*\]//' | python3 -c "
import sys
for l in sys.stdin:
    p=l.split(None,2)
    n=int(p[0].replace(',',''))
    print('%7d  %s'%(n//$2, p[2].strip()[:110]))
"
