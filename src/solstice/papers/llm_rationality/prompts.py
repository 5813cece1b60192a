"""The paper's prompts, verbatim (typos included) from the official repository
theryanl/LLM-rationality (data/data_utils.py `PromptConstants` for the forward task,
inverse_model/prompts.py for the inverse task). Liu et al. 2024, arXiv:2406.17055, App. A."""

from __future__ import annotations

_PREAMBLE_PERSON = (
    "A person is presented with two gambling machines, and makes a choice between the machines with the goal "
    "of maximizing the amount of dollars received. The person will get one reward from the machine they choose. "
    "A fixed proportion of 10% of this value will be paid to the participant as a performance bonus. If the "
    "reward is negative, their bonus is set to $0. \n\nMachine A: {A} \nMachine B: {B} \n\n"
)
_PREAMBLE_YOU = (
    "There are two gambling machines, A and B. You need to make a choice between the machines with the goal of "
    "maximizing the amount of dollars received. You will get one reward from the machine that you choose. A fixed "
    "proportion of 10% of this value will be paid to you as a performance bonus. If the reward is negative, your "
    "bonus is set to $0. \n\nMachine A: {A} \nMachine B: {B} \n\n"
)
_PREAMBLE_GROUP = (
    "{n} people are presented with two gambling machines, and each person makes a choice between the machines "
    "with the goal of maximizing the amount of dollars received. Each person will get one reward from the machine "
    "they choose. A fixed proportion of 10% of this value will be paid to the participant as a performance bonus. "
    "If the reward is negative, their bonus is set to $0. \n\nMachine A: {A} \nMachine B: {B} \n\n"
    "How many people choose Machine A? \nHow many people choose Machine B? \n\n"
)

# Forward modelling: predict an individual (individual_*), simulate one (act_individual_*), predict
# the group's distribution (aggregate_*); zero-shot or chain-of-thought.
FORWARD = {
    "individual_zero_shot": _PREAMBLE_PERSON
    + "Which machine do you choose? \nDo not provide any explanation, only answer with A or B: ",
    "individual_cot": _PREAMBLE_PERSON
    + "Which machine does the person choose? \nLet's think step by step before providing the final output. "
    'Please provide the human choice in the json format with the key "choice" and value "A" or "B".',
    "act_individual_zero_shot": _PREAMBLE_YOU
    + "Which machine do you choose? \nDo not provide any explanation, only answer with A or B: ",
    "act_individual_cot": _PREAMBLE_YOU
    + "Which machine do you choose? \nLet's think step by step before answering with A or B. Please provide the "
    'your choice in the json format with the key "choice" and value "A" or "B" ',
    "aggregate_zero_shot": _PREAMBLE_GROUP
    + "Please only provide the precentage of people who choose Machine A and Machine B in the json format.",
    "aggregate_cot": _PREAMBLE_GROUP
    + "Let's think step by step before providing the final output. Please provide the precentage of people who "
    "choose Machine A and Machine B in the json format.",
}

# Inverse modelling (Jern, Lucas & Kemp 2017 stimuli), pairwise comparison of two observed choices.
POSITIVE = (
    "The following are two choices that people have made between different bags of candy. Each candy is a "
    "different color. \n\nChoice 1 {kind_1}: \n{options_1}The person making the choice chose Bag {chosen_1}. \n\n"
    "Choice 2 {kind_2}: \n{options_2}The person making the choice chose Bag {chosen_2}. \n\n"
    "People were required to choose among the bags available, and were not allowed to reject all the bags. For "
    "example, when there is only one bag, the person has no choice but to choose it. \nWhich choice (1 or 2) more "
    "strongly suggests that the person making the choice likes {X} candies? {method}"
)
NEGATIVE = (
    "A team of scientists is studying how people respond to painful electric shocks applied at different body "
    "locations. In the study, some participants are allowed to choose the set of shocks they receive. The "
    "following are two choices that study participants have made between different sets of electric shocks. "
    "\n\nChoice 1 {kind_1}: \n{options_1}The person making the choice chose Set {chosen_1}. \n\n"
    "Choice 2 {kind_2}: \n{options_2}The person making the choice chose Set {chosen_2}. \n\n"
    "Note that participants were required to choose among the sets available, and were not allowed to opt-out "
    "and reject all the sets. For example, when there is only one set of shocks in the choice, the person has no "
    "choice but to choose it. \nWhich choice (1 or 2) more strongly suggests that the person making the choice "
    "finds shocks at {X} relatively tolerable? {method}"
)
FRAMING = {
    "positive": {
        "template": POSITIVE, "option": "Bag", "single": "contained only one option",
        "multiple": "was made between the following bags",
        "items": ("black", "yellow", "brown", "blue", "red"),
    },
    "negative": {
        "template": NEGATIVE, "option": "Set", "single": "contained only one option",
        "multiple": "was made between the following sets of shocks",
        "items": ("shock location 1", "shock location 2", "shock location 3", "shock location 4", "shock location 5"),
    },
}
METHOD = {
    "zero_shot": 'Please respond with either "Choice 1" or "Choice 2". Do not include anything else in your answer. ',
    "cot": "Let's think step by step. ",
}
REQUERY = {
    "positive": (
        "Based on the following response, which choice (1 or 2) more strongly suggests that the person making the "
        'choice likes {X} candies? If the response indicates that choice 1 and choice 2 provide equally strong '
        'evidence, answer "Tie". But even if it indicates there is only a small difference between the two '
        'choices, please respond with the one that provides the stronger evidence: "Choice 1" or "Choice 2". Do '
        "not include anything else in your answer. \n\nResponse: {response}"
    ),
    "negative": (
        "Based on the following response, which choice (1 or 2) more strongly suggests that the person making the "
        "choice finds shocks at {X} relatively tolerable? If the response indicates that choice 1 and choice 2 "
        'provide equally strong evidence, answer "Tie". But even if it indicates there is only a small difference '
        'between the two choices, please respond with the one that provides the stronger evidence: "Choice 1" or '
        '"Choice 2". Do not include anything else in your answer. \n\nResponse: {response}'
    ),
}
