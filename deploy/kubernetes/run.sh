#!/bin/sh
# Runs a sweep on the current kubectl context: the Indexed Job, then (once every index has
# finished, failed ones included: their documents hold the failures) the merge job, and
# prints the merged summary. Exits with the merge job's outcome: 0 clean, 1 otherwise.
set -eu
here=$(dirname "$0")
KUBECTL=${KUBECTL:-kubectl}
$KUBECTL apply -f "$here/sweep-job.yaml"
while :; do
    state=$($KUBECTL get job stormhold-sweep -o jsonpath='{.status.conditions[?(@.status=="True")].type}')
    case " $state " in
        *" Complete "* | *" Failed "*) break ;;
    esac
    sleep 30
done
echo "sweep job: $state"
$KUBECTL delete job stormhold-sweep-merge --ignore-not-found
$KUBECTL apply -f "$here/merge-job.yaml"
until state=$($KUBECTL get job stormhold-sweep-merge -o jsonpath='{.status.conditions[?(@.status=="True")].type}') \
    && case " $state " in *" Complete "* | *" Failed "*) true ;; *) false ;; esac; do
    sleep 10
done
$KUBECTL logs job/stormhold-sweep-merge
case " $state " in *" Complete "*) exit 0 ;; *) exit 1 ;; esac
